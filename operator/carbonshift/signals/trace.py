"""The trace provider: replays a real historical carbon-intensity trace as if it were live.

It is the embedded default for the demo and for offline clusters: no network at all. A time
map puts the trace onto the wall clock, either by calendar (same day-of-year and time in the
trace's year) or from an explicit anchor. The "forecast" is the trace's own future values,
optionally with seeded noise, or the real day-ahead forecast where the file carries one (DACF).
Beyond the end of the trace the replay wraps around to its beginning.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np
import numpy.typing as npt

from carbonshift.timefmt import ensure_utc, parse_iso

from .errors import BadSignalData
from .series import G_PER_KWH, Series, SeriesKind
from .tracedata import Trace

__all__ = ["TimeMap", "CalendarTimeMap", "AnchoredTimeMap", "TraceProvider", "parse_anchor"]


class TimeMap:
    """Maps wall-clock time to trace time (epoch seconds) by a constant offset per call."""

    def offset(self, wall: datetime, trace: Trace) -> float:  # pragma: no cover - interface
        raise NotImplementedError


@dataclass(frozen=True)
class CalendarTimeMap(TimeMap):
    """Same month, day and time of day in ``year`` (default: the trace's main year)."""

    year: int | None = None

    def offset(self, wall: datetime, trace: Trace) -> float:
        wall = ensure_utc(wall)
        year = self.year or trace.main_year
        day = 28 if (wall.month, wall.day) == (2, 29) else wall.day
        return wall.timestamp() - wall.replace(year=year, day=day).timestamp()


@dataclass(frozen=True)
class AnchoredTimeMap(TimeMap):
    """Trace time ``anchor`` happens at wall time ``wall_start`` (e.g. when the operator started)."""

    anchor: datetime
    wall_start: datetime

    def offset(self, wall: datetime, trace: Trace) -> float:
        return ensure_utc(self.wall_start).timestamp() - ensure_utc(self.anchor).timestamp()


def parse_anchor(text: str) -> datetime:
    return parse_iso(text)


@dataclass
class TraceProvider:
    """A ``CarbonProvider`` replaying ``trace`` against the injected clock ``now``."""

    trace: Trace
    now: Callable[[], datetime]
    time_map: TimeMap = CalendarTimeMap()
    zone: str | None = None
    noise: float = 0.0  # relative std-dev of forecast noise; 0 = perfect foresight
    seed: int = 0
    use_recorded_forecast: bool = True
    lookback: timedelta = timedelta(hours=1)

    def __post_init__(self) -> None:
        self.source = f"trace:{self.trace.name}"

    # -- mapping -----------------------------------------------------------------------
    def _window(self, offset: float, wall_start: float, wall_end: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.intp]]:
        """Wall epochs and trace indices of points in ``[wall_start, wall_end)``, wrapping around."""
        tr = self.trace
        t0, period = tr.times[0], tr.period
        lo, hi = wall_start - offset, wall_end - offset
        k_first = int(np.floor((lo - t0) / period))
        k_last = int(np.floor((hi - t0) / period))
        walls: list[npt.NDArray[np.float64]] = []
        idxs: list[npt.NDArray[np.intp]] = []
        for k in range(k_first, k_last + 1):
            shifted = tr.times + k * period
            i0 = int(np.searchsorted(shifted, lo, side="left"))
            i1 = int(np.searchsorted(shifted, hi, side="left"))
            if i1 > i0:
                idxs.append(np.arange(i0, i1))
                walls.append(shifted[i0:i1] + offset)
        if not idxs:
            return np.empty(0), np.empty(0, dtype=np.intp)
        return np.concatenate(walls), np.concatenate(idxs)

    def _latest_at(self, offset: float, wall: float) -> float:
        """Wall epoch of the newest trace point at or before ``wall``."""
        tr = self.trace
        rel = (wall - offset - tr.times[0]) % tr.period
        i = int(np.searchsorted(tr.times - tr.times[0], rel, side="right")) - 1
        return float(wall - (rel - (tr.times[max(i, 0)] - tr.times[0])))

    def _series(self, walls: npt.NDArray[np.float64], values: npt.NDArray[np.float64], **kw: object) -> Series:
        ok = np.isfinite(values)
        points = tuple(
            (datetime.fromtimestamp(float(t), tz=timezone.utc), float(v)) for t, v in zip(walls[ok], values[ok])
        )
        return Series(points=points, unit=G_PER_KWH, source=self.source, zone=self.zone, **kw)  # type: ignore[arg-type]

    # -- CarbonProvider ---------------------------------------------------------------
    async def current(self) -> Series:
        return self.current_now()

    async def forecast(self, horizon: timedelta) -> Series:
        return self.forecast_now(horizon)

    async def history(self, start: datetime, end: datetime) -> Series:
        return self.history_now(start, end)

    async def aclose(self) -> None:
        return None

    # -- synchronous core (no I/O; also used by the exporter's scrape thread) ---------
    def current_now(self) -> Series:
        now = ensure_utc(self.now())
        offset = self.time_map.offset(now, self.trace)
        latest = self._latest_at(offset, now.timestamp())
        walls, idx = self._window(offset, min(latest, now.timestamp() - self.lookback.total_seconds()), latest + 1e-3)
        if idx.size == 0:
            raise BadSignalData(f"{self.source}: no trace point at {now.isoformat()}")
        # Observed now, not at the point's time: a replay never lags, and the newest point of an
        # hourly trace is the value in force until the next one (else it would look up to an hour
        # stale and trip a 1 h maxSignalAge for no reason).
        return self._series(walls, self.trace.values[idx], observed_at=now, kind=SeriesKind.ACTUAL)

    def forecast_now(self, horizon: timedelta) -> Series:
        now = ensure_utc(self.now())
        offset = self.time_map.offset(now, self.trace)
        start = self._latest_at(offset, now.timestamp())
        walls, idx = self._window(offset, start, now.timestamp() + horizon.total_seconds())
        recorded = self.trace.forecast if self.use_recorded_forecast else None
        if recorded is not None:
            values = recorded[idx]
            note = f"recorded day-ahead forecast column of {self.trace.name}"
        else:
            values = self.trace.values[idx].copy()
            note = "trace future values (perfect foresight)"
            if self.noise > 0:
                values *= 1.0 + self.noise * self._noise(walls - offset)
                note = f"trace future values with seeded noise (sigma={self.noise:.0%}, seed={self.seed})"
        return self._series(walls, values, observed_at=now, kind=SeriesKind.FORECAST, notes=(note,))

    def history_now(self, start: datetime, end: datetime) -> Series:
        now = ensure_utc(self.now())
        offset = self.time_map.offset(now, self.trace)
        walls, idx = self._window(offset, ensure_utc(start).timestamp(), min(ensure_utc(end), now).timestamp())
        observed = datetime.fromtimestamp(walls[-1], tz=timezone.utc) if walls.size else now
        return self._series(walls, self.trace.values[idx], observed_at=observed, kind=SeriesKind.ACTUAL)

    def trace_time(self) -> datetime:
        """The trace timestamp being replayed now (shown by the exporter)."""
        now = ensure_utc(self.now())
        return datetime.fromtimestamp(now.timestamp() - self.time_map.offset(now, self.trace), tz=timezone.utc)

    def _noise(self, trace_epochs: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Standard normal noise that depends only on (seed, trace time): repeatable across calls."""
        return np.array(
            [np.random.default_rng([self.seed, int(t) & 0xFFFFFFFF]).standard_normal() for t in trace_epochs]
        )
