"""Outputs of the decision core: a plan per job and the reasons behind it, as data.

Why this module exists: "no feasible placement" and "wait until later" are results, not
exceptions, so every outcome, including failure, is a ``Plan`` whose ``reasons`` explain it with a
stable code (for conditions, Events and metrics) and a human message (for ``kubectl describe``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum


class ReasonCode(str, Enum):
    """Why a plan looks the way it does. Values are stable API (CamelCase like Kubernetes reasons)."""

    RUN_NOW_GREENEST = "RunNowGreenest"
    DELAYED_TO_GREENER_WINDOW = "DelayedToGreenerWindow"
    PLACED_IN_GREENER_REGION = "PlacedInGreenerRegion"
    SPLIT_INTO_GREEN_SLOTS = "SplitIntoGreenSlots"
    RUN_NOW_DEADLINE_NEAR = "RunNowDeadlineNear"
    RUN_NOW_BELOW_THRESHOLD = "RunNowBelowThreshold"
    GAIN_BELOW_FORECAST_ERROR = "GainBelowForecastError"
    USES_ONSITE_ENERGY = "UsesOnsiteEnergy"
    NO_SIGNAL_FALLBACK = "NoSignalFallback"
    NO_CAPACITY = "NoCapacity"
    DEADLINE_UNMEETABLE = "DeadlineUnmeetable"
    NO_ALLOWED_REGION = "NoAllowedRegion"


@dataclass(frozen=True)
class Reason:
    code: ReasonCode
    message: str


@dataclass(frozen=True)
class Plan:
    """The decision for one job.

    ``slots`` are indices on the snapshot's slot grid, in time order: contiguous for
    non-interruptible work, any subset for interruptible work. ``slot_fractions`` (same length)
    is the share of each slot actually used: 1.0 except for at most one partial slot (a 45-minute
    job on 30-minute slots uses 1.5 slots; contiguous work uses its last slot partially,
    interruptible work its most expensive one).
    ``solar_wh_by_slot`` and ``battery_wh_by_slot`` are the facility energy drawn from on-site
    solar and battery in each planned slot; the rest comes from the grid. ``expected_g`` is the
    expected grid emissions of the plan, ``baseline_g`` those of running at submit time (at
    the job's ``preferred_start`` when it has a later one) in the home region, both in gCO2eq from the signals the planner was given. When ``feasible`` is
    false the job cannot meet its deadline (or has no region); ``region``/``start`` then hold the
    best effort (run as soon as possible) or are ``None``.
    """

    job_id: str
    feasible: bool
    region: str | None
    start: datetime | None
    end: datetime | None
    slots: tuple[int, ...]
    slot_fractions: tuple[float, ...]
    it_power_w: float
    facility_power_w: float
    expected_g: float
    baseline_g: float
    reasons: tuple[Reason, ...]
    solar_wh_by_slot: tuple[float, ...] = ()
    battery_wh_by_slot: tuple[float, ...] = ()
    slot_start: datetime | None = None
    slot_length: timedelta | None = None

    @property
    def saved_g(self) -> float:
        return self.baseline_g - self.expected_g

    @property
    def codes(self) -> tuple[ReasonCode, ...]:
        return tuple(reason.code for reason in self.reasons)

    @property
    def waits(self) -> bool:
        """True when the plan starts later than the first possible slot ("wait until later")."""
        return any(code is ReasonCode.DELAYED_TO_GREENER_WINDOW for code in self.codes)

    def slot_times(self) -> tuple[datetime, ...]:
        """Start time of every planned slot (useful for interruptible work)."""
        if self.slot_start is None or self.slot_length is None:
            return ()
        return tuple(self.slot_start + index * self.slot_length for index in self.slots)
