"""The built-in forecaster (``core.forecaster``) applied to a provider's history.

Why this module exists: a provider that gives only current values (a Prometheus exporter, a
trace-less zone) or whose forecast failed still has a past. ``GuardedProvider`` turns that past
into a day-ahead forecast here, marked ``kind="builtin-forecast"`` so the controller can say in a
job's decision that it was planned on our forecast rather than the provider's.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from carbonshift.core.forecaster import PROFILE_DAYS, forecast_day_ahead

from .errors import BadSignalData
from .series import Series, SeriesKind, ensure_utc, to_slots

__all__ = ["builtin_forecast"]

_HOUR = timedelta(hours=1)


def builtin_forecast(history: Series, *, now: datetime, horizon: timedelta) -> Series:
    """Hourly points from the hour containing ``now`` until ``now + horizon``, from ``history`` alone."""
    start = ensure_utc(now).replace(minute=0, second=0, microsecond=0)
    past = PROFILE_DAYS * 24
    hourly = to_slots(history, start - past * _HOUR, _HOUR, past)
    if np.isnan(hourly).all():
        raise BadSignalData(f"{history.source}: history has no values in the last {PROFILE_DAYS} days")
    count = max(1, int(np.ceil((ensure_utc(now) + horizon - start) / _HOUR)))
    values = forecast_day_ahead(hourly, 3600, start.timestamp(), count)
    known = int((~np.isnan(hourly)).sum())
    return Series(
        points=tuple((start + i * _HOUR, float(v)) for i, v in enumerate(values)),
        unit=history.unit,
        source=history.source,
        observed_at=history.observed_at,
        kind=SeriesKind.BUILTIN_FORECAST,
        zone=history.zone,
        notes=(f"built-in forecast from {known} hours of the last {PROFILE_DAYS} days of history",),
    )
