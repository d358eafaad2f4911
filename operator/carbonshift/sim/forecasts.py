"""Forecast sources for the simulator, issued as a real service issues them.

Why this module exists: a plan is only as good as the forecast it was made on, and the forecast a
planner has at time ``t`` may use nothing that was not known at ``t``. Every source here answers
"what would the forecast issued at slot ``t`` say about slots ``t .. t+n-1``" on the trace's slot
grid, vectorised over many issue times at once (an ``(issues, n)`` array, NaN where the service
would not know yet). History known at ``t`` is the actual series up to slot ``t - 1``.

Sources (``--forecast`` names):
- ``actual``: the actual series (the oracle's perfect forecast).
- ``dacf`` or ``PATH[:COLUMN]``: a recorded day-ahead series (the DACF column
  ``carbon_from_src_forecasts`` of the trace's own file, or a column of another CSV). A day-ahead
  forecast of UTC day ``D + 1`` is published on day ``D`` at ``publish_hour`` (12:00 UTC, before
  the European day-ahead market closes), so at ``t`` it is known through the end of ``D`` or, after
  publication, of ``D + 1``; nothing beyond.
- ``persistence``: the last known value, held.
- ``yesterday``: the same time of day on the last day before ``t`` (the last 24 h, tiled).
- ``week-mean``: the mean at the same time of day over the last 7 days before ``t``.
- ``noise:<pct>``: the actual series plus i.i.d. Gaussian noise, std = pct % of the mean intensity
  (the Let's Wait Awhile error model; one seeded draw for the whole series, as ``engine``).
- ``builtin``: ``carbonshift.core.forecaster.forecast_day_ahead`` on the history known at ``t``.

History-based sources and ``builtin`` reach ``horizon_slots`` ahead (the operator's
``horizonHours``); ``None`` means "any length" (the whole-window mode used for the papers).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pandas as pd

from carbonshift.signals.tracedata import open_trace, resolve_trace_path
from carbonshift.sim import traces

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DACF_COLUMN = "carbon_from_src_forecasts"
HISTORY_SOURCES = ("persistence", "yesterday", "week-mean", "builtin")


@dataclass(frozen=True, eq=False)
class Grid:
    """The trace's slot grid: ``actual`` values, slot 0 at ``start_epoch`` (s), ``step_seconds`` long."""

    actual: FloatArray
    start_epoch: float
    step_seconds: int

    @property
    def slots_per_day(self) -> int:
        return int(round(86400 / self.step_seconds))


@dataclass(frozen=True, eq=False)
class ForecastSource:
    """A forecast service: ``issue(ts, n)`` is what it says at slots ``ts`` about the next ``n`` slots."""

    name: str
    grid: Grid
    horizon_slots: int | None
    _issue: Callable[[IntArray, int], FloatArray] = field(repr=False)

    def issue(self, ts: IntArray | int, n: int) -> FloatArray:
        """``(len(ts), n)`` values (1-D for a scalar ``ts``); NaN where not known at issue time."""
        scalar = np.ndim(ts) == 0
        t = np.atleast_1d(np.asarray(ts, dtype=np.int64))
        out = self._issue(t, n)
        if self.horizon_slots is not None and n > self.horizon_slots:
            out[:, self.horizon_slots:] = np.nan
        return out[0] if scalar else out


def _take(values: FloatArray, index: IntArray) -> FloatArray:
    """``values[index]`` with NaN outside the array."""
    ok = (index >= 0) & (index < values.shape[0])
    out = np.full(index.shape, np.nan)
    out[ok] = values[index[ok]]
    return out


def _ahead(t: IntArray, n: int) -> IntArray:
    return t[:, None] + np.arange(n)[None, :]


def _same_time_back(t: IntArray, n: int, day: int, days_back: int) -> IntArray:
    """Slot ``t + k`` mapped to the same time of day ``days_back`` days before its last known day."""
    k = np.arange(n)[None, :]
    return t[:, None] + k - day * ((k // day) + 1 + days_back)


def actual_source(grid: Grid) -> ForecastSource:
    return ForecastSource("actual", grid, None, lambda t, n: _take(grid.actual, _ahead(t, n)))


def persistence_source(grid: Grid, horizon_slots: int | None) -> ForecastSource:
    def issue(t: IntArray, n: int) -> FloatArray:
        return np.repeat(_take(grid.actual, t - 1)[:, None], n, axis=1)
    return ForecastSource("persistence", grid, horizon_slots, issue)


def yesterday_source(grid: Grid, horizon_slots: int | None) -> ForecastSource:
    day = grid.slots_per_day
    return ForecastSource("yesterday", grid, horizon_slots,
                          lambda t, n: _take(grid.actual, _same_time_back(t, n, day, 0)))


def week_mean_source(grid: Grid, horizon_slots: int | None, days: int = 7) -> ForecastSource:
    day = grid.slots_per_day

    def issue(t: IntArray, n: int) -> FloatArray:
        stack = np.stack([_take(grid.actual, _same_time_back(t, n, day, j)) for j in range(days)])
        with np.errstate(invalid="ignore"):
            count = np.sum(~np.isnan(stack), axis=0)
            total = np.nansum(stack, axis=0)
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return ForecastSource("week-mean", grid, horizon_slots, issue)


def noise_source(grid: Grid, pct: float, seed: int = 0) -> ForecastSource:
    rng = np.random.default_rng(seed)
    noisy = grid.actual + rng.normal(0.0, pct / 100.0 * float(np.nanmean(grid.actual)), size=grid.actual.shape[0])
    return ForecastSource(f"noise:{pct:g}", grid, None, lambda t, n: _take(noisy, _ahead(t, n)))


def day_ahead_source(grid: Grid, series: FloatArray, name: str = "dacf", publish_hour: float = 12.0,
                     whole_window: bool = False) -> ForecastSource:
    """A recorded day-ahead series: at ``t`` known through the end of the next UTC day once published."""
    series = np.asarray(series, dtype=np.float64)

    def issue(t: IntArray, n: int) -> FloatArray:
        out = _take(series, _ahead(t, n))
        if whole_window:
            return out
        seconds = grid.start_epoch + t * grid.step_seconds
        day_start = np.floor(seconds / 86400.0) * 86400.0
        published = (seconds - day_start) >= publish_hour * 3600.0
        end_epoch = day_start + 86400.0 * np.where(published, 2, 1)  # exclusive
        known = np.floor((end_epoch - grid.start_epoch) / grid.step_seconds + 1e-9).astype(np.int64) - t
        out[np.arange(n)[None, :] >= known[:, None]] = np.nan
        return out
    return ForecastSource(name, grid, None, issue)


def builtin_source(grid: Grid, horizon_slots: int | None, history_days: int = 28) -> ForecastSource:
    """``core.forecaster.forecast_day_ahead`` on what is known at ``t`` (a stand-in until it lands)."""
    forecast = _builtin_forecaster()
    keep = history_days * grid.slots_per_day

    def issue(t: IntArray, n: int) -> FloatArray:
        out = np.full((t.shape[0], n), np.nan)
        for row, ti in enumerate(t):
            history = grid.actual[max(0, int(ti) - keep):int(ti)]
            if history.size:
                out[row] = forecast(history, grid.step_seconds, grid.start_epoch + int(ti) * grid.step_seconds, n)
        return out
    return ForecastSource("builtin", grid, horizon_slots, issue)


def _builtin_forecaster() -> Callable[[FloatArray, int, float, int], FloatArray]:
    try:
        from carbonshift.core.forecaster import forecast_day_ahead  # type: ignore[import-not-found,unused-ignore]
        return forecast_day_ahead
    except ImportError:
        return _weekly_profile_stand_in


def _weekly_profile_stand_in(history: FloatArray, step_seconds: int, first_step_epoch: float,
                             horizon_steps: int) -> FloatArray:
    """Same time-of-day mean over the last 7 days (the CONTRACT's stand-in for the built-in forecaster)."""
    grid = Grid(np.asarray(history, dtype=np.float64), first_step_epoch - history.shape[0] * step_seconds, step_seconds)
    return week_mean_source(grid, None).issue(history.shape[0], horizon_steps)


def read_column(path: str, column: str | None, step: pd.Timedelta, index: pd.DatetimeIndex) -> FloatArray:
    """A forecast column of a CSV (default: DACF's), put on the trace's grid (held, never interpolated)."""
    ref = resolve_trace_path(path)
    with open_trace(ref) as handle:
        df = pd.read_csv(handle)
    name = column or DACF_COLUMN
    if name not in df.columns:
        raise ValueError(f"{ref.name}: no column {name!r}")
    time_col = next((c for c in df.columns if str(c).lower() in ("utc time", "time", "datetime (utc)", "datetime")),
                    df.columns[0])
    series = pd.Series(df[name].to_numpy(dtype=float), index=pd.to_datetime(df[time_col], utc=True))
    aligned = traces.align({"f": series}, step=step).frame["f"]
    values: FloatArray = aligned.reindex(index).to_numpy(dtype=np.float64)
    return values


def read_dacf(path: str, region: str, max_step: pd.Timedelta | None = None) -> tuple[traces.Trace, FloatArray]:
    """A DACF research file (``UTC time``, ``carbon_intensity``, ``carbon_from_src_forecasts``): actual and forecast."""
    ref = resolve_trace_path(path)
    with open_trace(ref) as handle:
        df = pd.read_csv(handle, usecols=["UTC time", "carbon_intensity", DACF_COLUMN])
    index = pd.to_datetime(df["UTC time"], utc=True)
    actual = pd.Series(df["carbon_intensity"].to_numpy(dtype=float), index=index)
    forecast = pd.Series(df[DACF_COLUMN].to_numpy(dtype=float), index=index)
    trace = traces.align({region: actual}, max_step=max_step)
    aligned = traces.align({"f": forecast}, step=trace.step).frame["f"].reindex(trace.frame.index)
    return trace, aligned.to_numpy(dtype=np.float64)


def load_trace_and_forecast(path: str, region: str | None, em_column: str,
                            max_step: pd.Timedelta) -> tuple[traces.Trace, FloatArray | None]:
    """One trace (a DACF research file or anything ``traces.load`` reads) and its day-ahead column, if any."""
    ref = resolve_trace_path(path)
    with open_trace(ref) as handle:
        header = handle.readline()
    if "UTC time" in header and DACF_COLUMN in header:
        name = region or ref.name.split("_")[0]
        return read_dacf(path, name, max_step)
    trace = traces.load([f"{region}={path}" if region else path], em_column=em_column, max_step=max_step)
    if DACF_COLUMN not in header:
        return trace, None
    return trace, read_column(path, DACF_COLUMN, trace.step, trace.frame.index)


def make_source(spec: str, grid: Grid, *, trace_path: str | None = None, step: pd.Timedelta | None = None,
                index: pd.DatetimeIndex | None = None, horizon_slots: int | None = None, seed: int = 0,
                whole_window: bool = False) -> ForecastSource:
    """Parse a ``--forecast`` value into a source on ``grid``."""
    if spec == "actual":
        return actual_source(grid)
    if spec == "persistence":
        return persistence_source(grid, horizon_slots)
    if spec == "yesterday":
        return yesterday_source(grid, horizon_slots)
    if spec == "week-mean":
        return week_mean_source(grid, horizon_slots)
    if spec == "builtin":
        return builtin_source(grid, horizon_slots)
    if spec.startswith("noise:"):
        try:
            pct = float(spec.partition(":")[2])
        except ValueError as exc:
            raise ValueError(f"--forecast {spec}: noise:<percent> expected") from exc
        if not math.isfinite(pct) or pct < 0:
            raise ValueError(f"--forecast {spec}: the percentage must be >= 0")
        return noise_source(grid, pct, seed)
    if step is None or index is None:
        raise ValueError("a recorded forecast needs the trace's grid")
    column: str | None
    if spec == "dacf":
        if trace_path is None:
            raise ValueError("--forecast dacf reads the trace's own file: give one --trace")
        path, column = trace_path, DACF_COLUMN
    else:
        path, sep, column_or_empty = spec.rpartition(":")
        if not sep or not path or "/" in column_or_empty or not Path(path).suffix:
            path, column_or_empty = spec, ""
        column = column_or_empty or None
    values = read_column(path, column, step, index)
    return day_ahead_source(grid, values, name=spec if spec == "dacf" else "recorded", whole_window=whole_window)
