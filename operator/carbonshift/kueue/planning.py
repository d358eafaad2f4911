"""One Workload's plan from the decision core, and the sentence that explains it (pure).

The same ``plan_job`` the CarbonAwareJob path uses; the Workload only differs in where its
inputs come from (intent.py) and where the result goes (the check's message, the nomination).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime

import numpy as np

from carbonshift.controller.signalhub import RegionReading
from carbonshift.core import Plan, ReasonCode, RegionSignals, build_snapshot, plan_job
from carbonshift.kueue.intent import Intent, core_job, planner_options
from carbonshift.kueue.workloads import Workload, iso

NO_ALLOWANCE = "NoAllowance"
NO_REGION = "NoAllowedRegion"


def region_signals(readings: Mapping[str, RegionReading], regions: Iterable[str], intent: Intent,
                   now: datetime) -> list[RegionSignals]:
    """The regions' signals; with the ``runNow`` fallback a stale region's series is unknown (NaN),
    so the core falls back to running at once rather than trusting an old forecast."""
    out = []
    for region in sorted(set(regions)):
        reading = readings.get(region)
        if reading is None:
            continue
        age = reading.age(now)
        stale = reading.error is not None or age is None or age > intent.max_signal_age
        if stale and intent.signal_fallback == "runNow":
            out.append(reading.signals.with_intensity(np.full(reading.signals.n_slots, np.nan)))
        else:
            out.append(reading.signals)
    return out


def plan_workload(workload: Workload, intent: Intent, readings: Mapping[str, RegionReading],
                  regions: tuple[str, ...], submitted: datetime, now: datetime,
                  commitments: Iterable[Plan] = ()) -> Plan | None:
    """The core's plan over ``regions``; None when none of them has a reading at all."""
    signals = region_signals(readings, regions, intent, now)
    if not signals:
        return None
    job = core_job(workload, intent, tuple(s.region for s in signals), submitted, now)
    return plan_job(job, build_snapshot(signals), commitments, planner_options(intent))


def mean_intensity(plan: Plan) -> float | None:
    """Expected grid intensity over the planned run, g/kWh (None when unknown)."""
    if plan.start is None or plan.end is None or plan.facility_power_w <= 0:
        return None
    kwh = plan.facility_power_w * (plan.end - plan.start).total_seconds() / 3600.0 / 1000.0
    if kwh <= 0 or not np.isfinite(plan.expected_g):
        return None
    return plan.expected_g / kwh


def reason_code(plan: Plan) -> str:
    """The leading reason; a region choice outranks "deadline near" (which only means "start now")."""
    codes = plan.codes
    if ReasonCode.PLACED_IN_GREENER_REGION in codes and not plan.waits:
        return ReasonCode.PLACED_IN_GREENER_REGION.value
    return codes[0].value if codes else "Planned"


def explain(plan: Plan, now: datetime) -> str:
    """The check's message: window, region, expected intensity, reason code and why."""
    intensity = mean_intensity(plan)
    expected = f", expected {intensity:.0f} gCO2eq/kWh" if intensity is not None else ""
    saving = ""
    if np.isfinite(plan.baseline_g) and plan.baseline_g > 0 and np.isfinite(plan.expected_g):
        saving = f" ({100 * plan.saved_g / plan.baseline_g:.0f}% less than now)"
    why = "; ".join(r.message for r in plan.reasons)
    window = f"{iso(plan.start)}-{iso(plan.end)}" if plan.start and plan.end else "now"
    when = "held until" if plan.start is not None and plan.start > now else "start now,"
    return (f"carbonshift: {when} window {window} in {plan.region}{expected}{saving} "
            f"[{reason_code(plan)}] {why}").strip()
