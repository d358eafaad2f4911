"""Run a workload over a trace: plan on the forecast, evaluate on actuals, compare to oracle.

Why this module exists: it is the experiment, kept apart from argument parsing so tests and
benchmarks call it directly. Forecasts follow the Let's Wait Awhile error model: the forecast is
the actual series plus i.i.d. Gaussian noise with standard deviation ``forecast_error × mean
intensity`` (seeded), optionally denoised (``forecast_smoothing_slots``), used for every decision; emissions are always evaluated on the actual series.
Jobs are planned one by one in arrival order (``BatchOrder.AS_GIVEN``), each seeing the capacity
the earlier ones hold, as the operator would plan them online. The oracle is the same planner fed
the actual series; with capacity limits that greedy plan is not optimal, so a lower bound on the
emissions of any placement (``core.bound``) is reported beside it. Every job of the workload is
counted: one that is not placed is charged as run at once (it still has to run).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from carbonshift.core import (
    BatchOrder, Bound, Capacity, Job, Plan, PlannerOptions, RegionSignals, emissions_lower_bound, plan_jobs, smooth_forecast,
)
from carbonshift.sim.traces import Trace
from carbonshift.sim.workloads import SimJob


@dataclass(frozen=True)
class Scenario:
    regions: tuple[str, ...]
    home: str
    interruptible: bool = False
    forecast_error: float = 0.0
    seed: int = 0
    repetitions: int = 1
    capacity: Mapping[str, int] = field(default_factory=dict)
    options: PlannerOptions = PlannerOptions()
    power_w: float = 1000.0
    forecast_smoothing_slots: int = 0


def preferred_start(job: SimJob) -> datetime | None:
    """The core's preferred start of a workload job: its nominal start when later than its submission.

    A nightly job is submitted ``window`` hours before it would run at 01:00: "not shifting" is
    01:00 (the baseline), not the evening it is known in.
    """
    return job.nominal_start if job.nominal_start > job.submit_at else None


def _signals(trace: Trace, scenario: Scenario, values: Mapping[str, np.ndarray]) -> list[RegionSignals]:
    start = trace.frame.index[0].to_pydatetime()
    return [
        RegionSignals(region=r, start=start, slot=trace.step.to_pytimedelta(), intensity_g_per_kwh=values[r],
                      capacity=Capacity(max_concurrent_jobs=scenario.capacity.get(r)))
        for r in scenario.regions
    ]


def _emissions(plan: Plan, actual: Mapping[str, np.ndarray], slot_hours: float) -> float:
    if plan.region is None:
        return math.nan
    ci = actual[plan.region][list(plan.slots)]
    return float((np.asarray(plan.slot_fractions) * ci).sum() * plan.facility_power_w * slot_hours / 1000.0)


def run_at_once_g(ci: np.ndarray, grid_start: datetime, slot: timedelta, start: datetime, duration: timedelta,
                  power_w: float) -> float:
    """Grams of a run ``[start, start + duration)`` at ``power_w`` on a held (piecewise-constant) series.

    Exact for a start between slot boundaries (a :30 submission on an hourly trace): each slot is
    charged for the part of it the run covers. NaN if the run leaves the series.
    """
    a = (start - grid_start) / slot
    b = a + duration / slot
    first, stop = math.floor(a + 1e-9), math.ceil(b - 1e-9)
    if first < 0 or stop > ci.shape[0]:
        return math.nan
    covered = np.minimum(np.arange(first + 1, stop + 1), b) - np.maximum(np.arange(first, stop), a)
    return float((covered * ci[first:stop]).sum()) * power_w * (slot.total_seconds() / 3600.0) / 1000.0


def savings_fields(baseline: float, planned: float, oracle: float, bound: float | None) -> dict[str, object]:
    """Savings and fractions from totals in grams (the same formulas for one region and for a sum).

    A fraction is ``None`` when its reference saves nothing: "all of nothing" is not 1.0.
    """

    def pct(value: float) -> float:
        return round(100.0 * (1.0 - value / baseline), 3) if baseline > 0 else 0.0

    def fraction(reference: float) -> float | None:
        gain = baseline - reference
        return round((baseline - planned) / gain, 4) if gain > 1e-9 * max(1.0, baseline) else None

    out: dict[str, object] = {"savings_pct": pct(planned), "oracle_savings_pct": pct(oracle),
                              "fraction_of_oracle": fraction(oracle)}
    if bound is not None:
        out |= {"bound_savings_pct": pct(bound), "fraction_of_bound": fraction(bound)}
    return out


def run(trace: Trace, workload: Sequence[SimJob], scenario: Scenario, bound: bool = True) -> dict[str, object]:
    """Plan ``workload`` on the forecast and on actuals; every job is counted, placed or not.

    A job the planner cannot place (``NoCapacity``, or ``DeadlineUnmeetable``: no room on the slot
    grid, e.g. a zero-slack job submitted at :30 on an hourly trace) still has to run: it is charged
    as run at once in its home region, in the planned and the oracle totals alike, and counted in
    ``unplaced_jobs``. ``bound`` adds ``bound_g``, a lower bound on the emissions of any placement
    (``core.emissions_lower_bound``), and ``fraction_of_bound``.
    """
    frame = trace.frame
    start = frame.index[0].to_pydatetime()
    end = frame.index[-1].to_pydatetime() + trace.step.to_pytimedelta()
    slot = trace.step.to_pytimedelta()
    hours = slot.total_seconds() / 3600.0
    actual = {r: frame[r].to_numpy(dtype=np.float64) for r in scenario.regions}
    usable = [j for j in workload if j.submit_at >= start and j.deadline <= end]
    jobs = [
        Job(id=j.id, submit_at=j.submit_at, duration=j.duration, deadline=j.deadline, power_w=scenario.power_w,
            allowed_regions=scenario.regions, home_region=scenario.home, interruptible=scenario.interruptible,
            preferred_start=preferred_start(j))
        for j in usable
    ]
    home = actual[scenario.home]
    # each job's emissions if run at once at home: the baseline, and the price of a job not placed
    at_once = [run_at_once_g(home, start, slot, j.nominal_start, j.duration, scenario.power_w) for j in usable]
    baseline = sum(at_once)

    def evaluate(plans: list[Plan]) -> tuple[float, int, dict[str, int]]:
        total, misses = 0.0, 0
        unplaced: dict[str, int] = {}
        for i, (job, plan) in enumerate(zip(jobs, plans)):
            if not plan.feasible or plan.end is None:
                # The operator runs such a job anyway (at once, DeadlineUnmeetable) or it waits for
                # room: charge what running it at once emits, so it never counts as a saving.
                code = plan.reasons[0].code.value if plan.reasons else "Unplaced"
                unplaced[code] = unplaced.get(code, 0) + 1
                total += at_once[i]
                continue
            total += _emissions(plan, actual, hours)
            if plan.end > job.deadline:
                misses += 1
        return total, misses, unplaced

    actual_signals = _signals(trace, scenario, actual)
    oracle_plans = plan_jobs(jobs, actual_signals, options=scenario.options, order=BatchOrder.AS_GIVEN)
    oracle, _, oracle_unplaced = evaluate(oracle_plans)
    planned_runs: list[float] = []
    misses = 0
    unplaced: dict[str, int] = {}
    for rep in range(max(1, scenario.repetitions)):
        if scenario.forecast_error > 0:
            rng = np.random.default_rng(scenario.seed + rep)
            forecast = {r: v + rng.normal(0.0, scenario.forecast_error * float(v.mean()), size=v.shape[0]) for r, v in actual.items()}
        else:
            forecast = actual
        if scenario.forecast_smoothing_slots > 1:
            forecast = {r: smooth_forecast(v, scenario.forecast_smoothing_slots) for r, v in forecast.items()}
        plans = plan_jobs(jobs, _signals(trace, scenario, forecast), options=scenario.options, order=BatchOrder.AS_GIVEN)
        grams, rep_misses, rep_unplaced = evaluate(plans)
        planned_runs.append(grams)
        misses += rep_misses
        for code, count in rep_unplaced.items():
            unplaced[code] = unplaced.get(code, 0) + count
    planned = float(np.mean(planned_runs))
    lower: Bound | None = None
    if bound:
        # any plan scored on actuals is feasible for the bound's problem: the best of them steers it
        lower = emissions_lower_bound(jobs, actual_signals, at_once, scenario.options,
                                      upper_g=min(oracle, *planned_runs))
    result: dict[str, object] = {
        "jobs": len(jobs),
        "unplaced_jobs": sum(unplaced.values()),
        "unplaced_by_reason": unplaced,
        "oracle_unplaced_jobs": sum(oracle_unplaced.values()),
        "baseline_g": round(baseline, 3),
        "planned_g": round(planned, 3),
        "oracle_g": round(oracle, 3),
        "bound_g": None if lower is None else round(lower.grams, 3),
        "bound_exact": None if lower is None else lower.exact,
        **savings_fields(baseline, planned, oracle, None if lower is None else lower.grams),
        "deadline_misses": misses,
        "repetitions": max(1, scenario.repetitions),
        "planned_g_by_repetition": [round(x, 3) for x in planned_runs],
    }
    result["infeasible"] = result["unplaced_jobs"]  # the older name, kept for existing readers
    return result
