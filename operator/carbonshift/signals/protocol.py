"""The one protocol every carbon-intensity provider implements.

Providers are asyncio-native (the operator runs on Kopf's loop). All return ``Series`` in
gCO2eq/kWh with ``observed_at`` set, so the caller always sees how fresh a value is.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol, runtime_checkable

from .series import Series

__all__ = ["CarbonProvider"]


@runtime_checkable
class CarbonProvider(Protocol):
    """Grid carbon intensity for one zone/region."""

    #: A short, log-safe description, e.g. ``"electricitymaps:DE"`` (never contains a token).
    source: str

    async def current(self) -> Series:
        """The latest measured intensity (``kind="actual"``), newest point last."""
        ...

    async def forecast(self, horizon: timedelta) -> Series:
        """Intensity from about now over ``horizon`` (``kind="forecast"``).

        Raises ``ForecastNotSupported`` when the source has none; ``GuardedProvider`` then
        falls back to a weekly profile (``kind="profile-fallback"``).
        """
        ...

    async def history(self, start: datetime, end: datetime) -> Series:
        """Measured intensity in ``[start, end)`` (used for profiles and accounting)."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
