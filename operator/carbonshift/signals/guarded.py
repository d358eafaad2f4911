"""Wraps any provider with the behaviour every caller needs: cache, validation and fallback.

* ``current`` and ``forecast`` are cached for ``ttl`` with single-flight (``TTLCache``).
* Every result is validated (``ensure_valid``); bad or stale data raises, never passes silently.
* When the provider has no forecast, or its forecast is unavailable or bad, the built-in
  forecaster's day-ahead forecast from history (fetched at most hourly, else the last good one)
  is returned, marked ``builtin-forecast``; ``profile()`` gives the weekly profile on demand.
  A *stale* forecast raises ``StaleSignal`` instead: whether to use it, run now, or ask for
  ``profile()`` is the policy's decision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .builtin import builtin_forecast
from .cache import TTLCache
from .errors import BadSignalData, ProviderUnavailable, SignalError
from .profile import profile_forecast
from .protocol import CarbonProvider
from .series import Series
from .validate import Limits, ensure_valid

__all__ = ["GuardedProvider"]

log = logging.getLogger(__name__)


@dataclass
class GuardedProvider:
    """A ``CarbonProvider`` that caches, validates, and falls back to the built-in forecaster."""

    inner: CarbonProvider
    now: Callable[[], datetime]
    ttl: timedelta = timedelta(minutes=5)
    limits: Limits = field(default_factory=Limits)
    profile_history: timedelta = timedelta(weeks=4)
    # The built-in forecast leans on the last hours' values: refetch the history hourly.
    history_ttl: timedelta = timedelta(hours=1)
    profile_fallback: bool = True

    def __post_init__(self) -> None:
        self.source = self.inner.source
        self._cache: TTLCache[Series] = TTLCache(self.ttl, self.now)
        self._history_cache: TTLCache[Series] = TTLCache(self.history_ttl, self.now)
        self._history_failure: tuple[datetime, SignalError] | None = None

    async def current(self) -> Series:
        async def fetch() -> Series:
            return ensure_valid(await self.inner.current(), now=self.now(), limits=self.limits)

        return await self._cache.get("current", fetch)

    async def forecast(self, horizon: timedelta) -> Series:
        async def fetch() -> Series:
            try:
                series = await self.inner.forecast(horizon)
                # A forecast's values lie in the future: only its generation time can be stale.
                return ensure_valid(series, now=self.now(), limits=self.limits)
            except (ProviderUnavailable, BadSignalData) as exc:
                if not self.profile_fallback:
                    raise
                log.warning("%s: forecast unusable (%s); using the built-in forecast", self.source, exc)
                return await self._from_history(horizon, exc, builtin=True)

        return await self._cache.get(("forecast", horizon), fetch)

    async def history(self, start: datetime, end: datetime) -> Series:
        series = await self.inner.history(start, end)
        issues = Limits(max_age=timedelta.max, max_gap=self.limits.max_gap, max_value=self.limits.max_value)
        return ensure_valid(series, now=self.now(), limits=issues)

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def recent_history(self) -> Series:
        """The last ``profile_history`` of measured values, fetched at most every ``history_ttl``.

        Shares its cache with the built-in fallback, so a region that needs both costs one call an
        hour. After a failed fetch the provider is asked again only after ``history_ttl``; meanwhile
        the last good history is returned, or the failure raised again.
        """
        now = self.now()
        failed = self._history_failure
        if failed is not None and now - failed[0] < self.history_ttl:
            last = self._history_cache.peek("history")
            if last is None:
                raise failed[1]
            return last

        try:
            history = await self._history_cache.get("history", lambda: self._fetch_history(now))
        except SignalError as exc:
            self._history_failure = (now, exc)
            last = self._history_cache.peek("history")
            if last is None:
                raise
            return last
        self._history_failure = None
        return history

    async def _fetch_history(self, now: datetime) -> Series:
        """The last ``profile_history`` of values, the one provider call behind the history cache."""
        series = await self.inner.history(now - self.profile_history, now)
        if not series.points:
            raise BadSignalData(f"{self.source}: empty history")
        return series

    async def profile(self, horizon: timedelta) -> Series:
        """The weekly-profile forecast on demand (e.g. when a policy prefers it to a stale forecast)."""
        return await self._from_history(horizon, SignalError("requested explicitly"), builtin=False)

    async def _from_history(self, horizon: timedelta, cause: SignalError, *, builtin: bool) -> Series:
        now = self.now()

        try:
            history = await self._history_cache.get("history", lambda: self._fetch_history(now))
        except SignalError as exc:
            history_or_none = self._history_cache.peek("history")
            if history_or_none is None:
                raise ProviderUnavailable(
                    f"{self.source}: no forecast ({cause}) and no history to forecast from ({exc})"
                ) from exc
            history = history_or_none
        make = builtin_forecast if builtin else profile_forecast
        fallback = make(history, now=now, horizon=horizon)
        return fallback.replace(notes=(*fallback.notes, f"fallback because: {cause}"))
