"""The value type every provider returns: a time series that always says when it was observed.

``Series`` carries UTC timestamps, a unit, its source and ``observed_at`` (when the newest value
was measured or the forecast was generated), so staleness is visible everywhere. ``to_slots``
resamples a series onto the uniform slot grid the decision core works on.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import numpy.typing as npt

from carbonshift.timefmt import ensure_utc, iso_z, parse_timestamp  # re-exported: signals' public names

__all__ = [
    "G_PER_KWH",
    "WATTS",
    "WATT_HOURS",
    "JOULES",
    "RATIO",
    "LBS_PER_MWH_TO_G_PER_KWH",
    "SeriesKind",
    "Series",
    "to_slots",
    "ensure_utc",
    "parse_timestamp",
    "iso_z",
]

G_PER_KWH = "gCO2eq/kWh"
WATTS = "W"
WATT_HOURS = "Wh"
JOULES = "J"
RATIO = "ratio"  # 0..1, e.g. battery state of charge
#: WattTime MOER is in lbs CO2 per MWh; 1 lb/MWh = 453.592 g / 1000 kWh.
LBS_PER_MWH_TO_G_PER_KWH = 0.453592


class SeriesKind(str, enum.Enum):
    """What the values are: measurements, a provider's forecast, our forecast from history, or our profile."""

    ACTUAL = "actual"
    FORECAST = "forecast"
    BUILTIN_FORECAST = "builtin-forecast"
    PROFILE_FALLBACK = "profile-fallback"


@dataclass(frozen=True)
class Series:
    """A time series of one quantity; points are sorted, UTC, unique in time."""

    points: tuple[tuple[datetime, float], ...]
    unit: str
    source: str
    observed_at: datetime
    kind: SeriesKind = SeriesKind.ACTUAL
    zone: str | None = None
    notes: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        object.__setattr__(self, "observed_at", ensure_utc(self.observed_at))
        object.__setattr__(self, "kind", SeriesKind(self.kind))
        pts = tuple((ensure_utc(t), float(v)) for t, v in self.points)
        if any(a[0] >= b[0] for a, b in itertools.pairwise(pts)):
            pts = tuple(sorted(dict(pts).items()))
        object.__setattr__(self, "points", pts)

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[datetime, float]], **kwargs: object) -> Series:
        return cls(points=tuple(pairs), **kwargs)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self.points)

    @property
    def times(self) -> tuple[datetime, ...]:
        return tuple(t for t, _ in self.points)

    @property
    def values(self) -> npt.NDArray[np.float64]:
        return np.array([v for _, v in self.points], dtype=np.float64)

    @property
    def latest(self) -> tuple[datetime, float]:
        """The last point; raises ``IndexError`` on an empty series."""
        return self.points[-1]

    def age(self, now: datetime) -> timedelta:
        """How old the newest observation is at ``now``."""
        return ensure_utc(now) - self.observed_at

    def between(self, start: datetime, end: datetime) -> Series:
        """The points with ``start <= t < end``."""
        start, end = ensure_utc(start), ensure_utc(end)
        return self.replace(points=tuple(p for p in self.points if start <= p[0] < end))

    def replace(self, **changes: object) -> Series:
        data = {
            "points": self.points,
            "unit": self.unit,
            "source": self.source,
            "observed_at": self.observed_at,
            "kind": self.kind,
            "zone": self.zone,
            "notes": self.notes,
        }
        data.update(changes)
        return Series(**data)  # type: ignore[arg-type]

    def scaled(self, factor: float, unit: str) -> Series:
        return self.replace(points=tuple((t, v * factor) for t, v in self.points), unit=unit)


def _epoch(t: datetime) -> float:
    return ensure_utc(t).timestamp()


def to_slots(
    series: Series | Sequence[Series],
    start: datetime,
    slot: timedelta,
    count: int,
    *,
    max_gap: timedelta | None = None,
) -> npt.NDArray[np.float64]:
    """Resample onto ``count`` slots of length ``slot`` from ``start``: time-weighted means.

    Each point holds its value until the next point (a step function, the way hourly and
    half-hourly intensity data are published). The last point, and a point followed by a gap
    longer than ``max_gap`` (default: three typical steps), holds for one typical step only.
    A slot partly covered gets the mean of its covered part; an uncovered slot is NaN, so
    missing data is visible and never silently invented.

    Several series (e.g. ``[current, forecast]``) may be given; later ones win where they overlap.
    """
    if count < 0 or slot <= timedelta(0):
        raise ValueError("count must be >= 0 and slot positive")
    all_series = [series] if isinstance(series, Series) else list(series)
    edges = _epoch(start) + np.arange(count + 1, dtype=np.float64) * slot.total_seconds()
    result = np.full(count, np.nan)
    for s in all_series:
        if not s.points:
            continue
        filled = _step_average(s, edges, max_gap)
        mask = ~np.isnan(filled)
        result[mask] = filled[mask]
    return result


def _step_average(
    series: Series, edges: npt.NDArray[np.float64], max_gap: timedelta | None
) -> npt.NDArray[np.float64]:
    t = np.array([_epoch(p[0]) for p in series.points])
    v = series.values
    steps = np.diff(t)
    typical = float(np.median(steps)) if steps.size else 3600.0
    gap_limit = max_gap.total_seconds() if max_gap is not None else 3.0 * typical
    ends = np.empty_like(t)
    ends[:-1] = np.where(steps > gap_limit, t[:-1] + typical, t[1:])
    ends[-1] = t[-1] + typical
    # Piecewise constant value and coverage; their cumulative integrals are piecewise linear
    # with knots at the segment boundaries, so np.interp on the knots is exact.
    knots = np.unique(np.concatenate([t, ends]))
    seg = np.searchsorted(t, knots[:-1], side="right") - 1
    covered = (seg >= 0) & (knots[:-1] < ends[np.clip(seg, 0, None)])
    widths = np.diff(knots)
    vals = np.where(covered, v[np.clip(seg, 0, None)], 0.0)
    cum_value = np.concatenate([[0.0], np.cumsum(vals * widths)])
    cum_cover = np.concatenate([[0.0], np.cumsum(np.where(covered, widths, 0.0))])
    f_value = np.interp(edges, knots, cum_value)
    f_cover = np.interp(edges, knots, cum_cover)
    d_value = np.diff(f_value)
    d_cover = np.diff(f_cover)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(d_cover > 1e-9, d_value / np.where(d_cover > 1e-9, d_cover, 1.0), np.nan)
    return out


