"""All regions' signals stacked on one slot grid, as NumPy arrays.

Why this module exists: planning compares every region and every start at once; stacking the
per-region series into ``(regions, slots)`` arrays once lets each plan be a handful of vectorised
operations instead of Python loops over regions and slots.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from datetime import datetime, timedelta

import numpy as np

from carbonshift.core.model import FloatArray, RegionSignals


@dataclass(frozen=True, eq=False)
class Snapshot:
    """Regions aligned on a common grid (same start and slot length; shorter series NaN-padded).

    The arrays must not be modified after construction: derived properties are cached.
    """

    regions: tuple[str, ...]
    start: datetime
    slot: timedelta
    intensity: FloatArray  # (R, n) gCO2eq/kWh, NaN = unknown
    solar_w: FloatArray  # (R, n) W of on-site surplus, 0 when absent
    pue: FloatArray  # (R,)
    max_jobs: FloatArray  # (R,) inf when unlimited
    power_budget_w: FloatArray  # (R,) inf when unlimited
    battery_usable_wh: FloatArray  # (R,) usable energy above reserve now
    battery_max_discharge_w: FloatArray  # (R,)
    signals: tuple[RegionSignals, ...]

    @cached_property
    def n_slots(self) -> int:
        return int(self.intensity.shape[1])

    @cached_property
    def slot_hours(self) -> float:
        return self.slot.total_seconds() / 3600.0

    @cached_property
    def has_solar(self) -> bool:
        return bool(np.any(self.solar_w > 0))

    @cached_property
    def has_battery(self) -> bool:
        return bool(np.any(self.battery_usable_wh > 0))

    @cached_property
    def has_capacity_limits(self) -> bool:
        return bool(np.any(np.isfinite(self.max_jobs)) or np.any(np.isfinite(self.power_budget_w)))

    def index(self, region: str) -> int:
        return self.regions.index(region)

    def time_of(self, slot_index: float) -> datetime:
        return self.start + self.slot * slot_index


def build_snapshot(signals: Sequence[RegionSignals]) -> Snapshot:
    """Stack region signals; they must share start and slot length (a caller error otherwise)."""
    if not signals:
        raise ValueError("at least one region is needed")
    first = signals[0]
    names = tuple(s.region for s in signals)
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate region names: {names}")
    for s in signals[1:]:
        if s.start != first.start or s.slot != first.slot:
            raise ValueError(f"region {s.region} is on another slot grid than {first.region}")
    n = max(s.n_slots for s in signals)
    r = len(signals)
    intensity = np.full((r, n), np.nan)
    solar = np.zeros((r, n))
    for i, s in enumerate(signals):
        intensity[i, : s.n_slots] = s.intensity_g_per_kwh
        if s.solar_w is not None:
            solar[i, : s.n_slots] = s.solar_w
    def cap(value: float | None) -> float:
        return math.inf if value is None else float(value)
    return Snapshot(
        regions=names,
        start=first.start,
        slot=first.slot,
        intensity=intensity,
        solar_w=solar,
        pue=np.array([s.pue for s in signals], dtype=np.float64),
        max_jobs=np.array([cap(s.capacity.max_concurrent_jobs) for s in signals]),
        power_budget_w=np.array([cap(s.capacity.power_budget_w) for s in signals]),
        battery_usable_wh=np.array([s.battery.usable_wh if s.battery else 0.0 for s in signals]),
        battery_max_discharge_w=np.array([s.battery.max_discharge_w if s.battery else 0.0 for s in signals]),
        signals=tuple(signals),
    )
