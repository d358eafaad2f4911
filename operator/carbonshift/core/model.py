"""Inputs of the decision core: jobs, per-region signals and planner options.

Why this module exists: the core is a pure function "snapshot in, plan out". This module is the
snapshot's vocabulary, written as frozen dataclasses with units in the field names, so that the
operator, the simulator and the tests all describe the world the same way and nothing in the
core needs Kubernetes, HTTP or a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


class Fallback(str, Enum):
    """What to do when no allowed region has a usable carbon signal."""

    RUN_NOW = "RunNow"


@dataclass(frozen=True)
class Job:
    """One unit of flexible batch work.

    Exactly one of ``power_w`` (average IT power) or ``energy_wh`` (IT energy of the whole run)
    should be given; with neither, a nominal 1 W is assumed so emissions are still comparable.
    ``allowed_regions`` empty means "any region in the snapshot". ``home_region`` is where the
    job would run without carbonshift: the baseline runs there at ``submit_at``, or at
    ``preferred_start`` when given (a job known ahead of its usual time, e.g. a nightly job at
    01:00 submitted the evening before). A preferred start is not a constraint: the job may still
    start anywhere in ``[submit_at, deadline - duration]``, but "not shifting" means starting
    there, equal costs go to it, and the planner's baseline is a run from it. ``None``: the
    earliest start (``submit_at``).
    """

    id: str
    submit_at: datetime
    duration: timedelta
    deadline: datetime
    power_w: float | None = None
    energy_wh: float | None = None
    allowed_regions: tuple[str, ...] = ()
    home_region: str | None = None
    interruptible: bool = False
    preferred_start: datetime | None = None

    @property
    def it_power_w(self) -> float:
        """Average IT power in W, from ``power_w`` or ``energy_wh / duration``."""
        if self.power_w is not None:
            return float(self.power_w)
        hours = self.duration.total_seconds() / 3600.0
        if self.energy_wh is not None and hours > 0:
            return float(self.energy_wh) / hours
        return 1.0


@dataclass(frozen=True)
class Battery:
    """On-site battery, charged by on-site solar, so its energy costs ~zero grid carbon.

    ``state_of_charge_fraction`` and ``reserve_fraction`` are fractions of ``capacity_wh``;
    the planner never takes the battery below its reserve nor discharges above ``max_discharge_w``.
    """

    capacity_wh: float
    state_of_charge_fraction: float
    reserve_fraction: float = 0.2
    max_discharge_w: float = math.inf
    max_charge_w: float = math.inf
    charge_efficiency: float = 0.95

    @property
    def usable_wh(self) -> float:
        """Energy available now above the reserve."""
        return max(0.0, (self.state_of_charge_fraction - self.reserve_fraction) * self.capacity_wh)


@dataclass(frozen=True)
class Capacity:
    """A region's limits for flexible work. ``None`` means unlimited."""

    max_concurrent_jobs: int | None = None
    power_budget_w: float | None = None


@dataclass(frozen=True, eq=False)
class RegionSignals:
    """Everything the planner knows about one region, on a uniform slot grid.

    Slot ``i`` covers ``[start + i*slot, start + (i+1)*slot)``. ``intensity_g_per_kwh`` is the
    grid carbon intensity (actual for past slots, forecast for future ones); NaN means unknown.
    ``solar_w`` is the on-site solar power forecast per slot (already net of the site's own
    non-flexible load, i.e. the surplus flexible work may use). ``pue`` multiplies IT energy into
    facility energy.
    """

    region: str
    start: datetime
    slot: timedelta
    intensity_g_per_kwh: FloatArray
    solar_w: FloatArray | None = None
    battery: Battery | None = None
    capacity: Capacity = field(default_factory=Capacity)
    pue: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "intensity_g_per_kwh", np.asarray(self.intensity_g_per_kwh, dtype=np.float64))
        if self.solar_w is not None:
            solar = np.asarray(self.solar_w, dtype=np.float64)
            if solar.shape != self.intensity_g_per_kwh.shape:
                raise ValueError(f"{self.region}: solar_w and intensity_g_per_kwh differ in length")
            object.__setattr__(self, "solar_w", np.nan_to_num(np.clip(solar, 0.0, None)))
        if self.slot <= timedelta(0):
            raise ValueError(f"{self.region}: slot length must be positive")

    @property
    def n_slots(self) -> int:
        return int(self.intensity_g_per_kwh.shape[0])

    @property
    def slot_hours(self) -> float:
        return self.slot.total_seconds() / 3600.0

    def with_intensity(self, intensity_g_per_kwh: FloatArray) -> RegionSignals:
        """The same region with another intensity series (e.g. actuals for the oracle)."""
        return RegionSignals(
            region=self.region,
            start=self.start,
            slot=self.slot,
            intensity_g_per_kwh=intensity_g_per_kwh,
            solar_w=self.solar_w,
            battery=self.battery,
            capacity=self.capacity,
            pue=self.pue,
        )


@dataclass(frozen=True)
class PlannerOptions:
    """How cautious and how eager the planner is.

    - ``safety_margin_fraction``: the latest end is ``deadline - safety_margin_fraction * duration
      - safety_margin``, covering duration estimates that run long.
    - ``forecast_error_fraction``: only leave "run now in the home region" when the forecast gain
      exceeds this fraction of the run-now emissions (a gain smaller than the forecast error is
      noise, not a saving). 0 disables it.
    - ``run_now_below_g_per_kwh``: run now if the home region's current intensity is at or below
      this threshold.
    - ``fallback``: what happens when no allowed region has a usable signal.
    """

    safety_margin_fraction: float = 0.0
    safety_margin: timedelta = timedelta(0)
    forecast_error_fraction: float = 0.0
    run_now_below_g_per_kwh: float | None = None
    fallback: Fallback = Fallback.RUN_NOW
