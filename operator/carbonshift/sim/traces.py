"""Load carbon-intensity traces from CSV files and put them on one uniform slot grid.

Why this module exists: the real traces come in several shapes, and the planner needs one regular
grid. Supported as they are:

- Let's Wait Awhile (``Time,Carbon Intensity``; Germany 15-min, Great Britain 30-min until
  2020-10-31 then 15-min);
- Electricity Maps hourly exports (``Datetime (UTC)``, ``Zone Id``, ``Carbon Intensity gCO₂eq/kWh
  (LCA)`` and ``(direct)``; LCA by default, as Let's Wait Awhile uses life-cycle factors);
- any CSV with a time column first and one intensity column per region (the bundled traces,
  ``DE``, ``GB``, ... are of this kind; a recorded forecast column is left out).

A ``--trace`` is a bundled name or a file path, resolved by ``signals.tracedata`` (the one place
that knows where traces live).

Mixed resolutions are averaged onto the coarsest regular step found (the most common spacing of
each file; the largest of those across files): each slot holds the mean intensity over the slot.
Short gaps are filled by time interpolation.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

from carbonshift.signals.tracedata import BundledTrace, TraceRef, open_trace, resolve_trace_path

EM_TIME = "Datetime (UTC)"
EM_LCA = "Carbon Intensity gCO₂eq/kWh (LCA)"
EM_DIRECT = "Carbon Intensity gCO₂eq/kWh (direct)"
FORECAST_COLUMNS = ("carbon_from_src_forecasts",)


@dataclass(frozen=True, eq=False)
class Trace:
    """Regions' intensities (gCO2eq/kWh) on one UTC grid: ``frame`` has one column per region."""

    frame: pd.DataFrame

    @property
    def regions(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.frame.columns)

    @property
    def step(self) -> pd.Timedelta:
        return pd.Timedelta(self.frame.index[1] - self.frame.index[0])


def read_csv(ref: TraceRef, region: str | None = None, em_column: str = "lca") -> dict[str, pd.Series]:
    """Read one CSV into ``{region: series}`` with a UTC DatetimeIndex, native resolution."""
    with open_trace(ref) as handle:
        df = pd.read_csv(io.StringIO(handle.read()))
    if EM_TIME in df.columns:
        column = EM_LCA if em_column == "lca" else EM_DIRECT
        index = pd.to_datetime(df[EM_TIME], utc=True)
        name = region or str(df["Zone Id"].iloc[0])
        return {name: pd.Series(df[column].to_numpy(dtype=float), index=index, name=name)}
    index = pd.to_datetime(df.iloc[:, 0], utc=True)
    columns = [c for c in df.columns[1:] if pd.api.types.is_numeric_dtype(df[c]) and c not in FORECAST_COLUMNS]
    if not columns:
        raise ValueError(f"{ref.name}: no numeric intensity column")
    out: dict[str, pd.Series] = {}
    for c in columns:
        if region is not None and len(columns) == 1:
            name = region
        elif len(columns) == 1 and isinstance(ref, BundledTrace):
            name = ref.zone
        elif len(columns) == 1 and c in ("Carbon Intensity", "carbon_intensity"):
            name = ref.name.removesuffix(".gz").removesuffix(".csv").removesuffix("_ci")
        else:
            name = str(c)
        out[name] = pd.Series(df[c].to_numpy(dtype=float), index=index, name=name)
    return out


def native_step(series: pd.Series) -> pd.Timedelta:
    """The most common spacing between samples."""
    diffs = series.index.to_series().diff().dropna()
    return pd.Timedelta(diffs.mode().iloc[0])


def align(series: dict[str, pd.Series], step: pd.Timedelta | None = None,
          max_step: pd.Timedelta | None = None) -> Trace:
    """Average every series onto one regular grid over the common time span.

    The grid is ``step``, else the coarsest native step, but at most ``max_step``: a coarser series
    is then held over the finer slots (an hourly value is the mean of its hour, so each half hour
    gets it), never interpolated.
    """
    if not series:
        raise ValueError("no trace given")
    if step is None:
        step = max(native_step(s) for s in series.values())
        if max_step is not None and step > max_step:
            step = max_step
    frames = {}
    for name, s in series.items():
        s = s[~s.index.duplicated()].sort_index()
        native = native_step(s)
        if native > step:
            frames[name] = s.resample(step).ffill(limit=max(int(native / step) - 1, 0))
        else:
            frames[name] = s.resample(step).mean().interpolate(method="time", limit_area="inside")
    frame = pd.DataFrame(frames).dropna()
    if len(frame) < 2:
        raise ValueError("the traces do not overlap in time")
    full = pd.date_range(frame.index[0], frame.index[-1], freq=step)
    frame = frame.reindex(full).interpolate(method="time")
    return Trace(frame=frame.astype(np.float64))


def load(specs: list[str], em_column: str = "lca", max_step: pd.Timedelta | None = None) -> Trace:
    """Load ``--trace`` arguments: ``PATH`` or ``REGION=PATH``; a PATH may be a bundled name such as ``DE``."""
    series: dict[str, pd.Series] = {}
    for spec in specs:
        region, sep, path = spec.partition("=")
        if not sep:
            region, path = "", spec
        for name, s in read_csv(resolve_trace_path(path), region or None, em_column).items():
            if name in series:
                raise ValueError(f"region {name} given twice")
            series[name] = s
    return align(series, max_step=max_step)
