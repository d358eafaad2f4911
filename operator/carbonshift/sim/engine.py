"""Run a workload over a trace: plan on the forecast, evaluate on actuals, compare to oracle.

Why this module exists: it is the experiment, kept apart from argument parsing so tests and
benchmarks call it directly. Forecasts follow the Let's Wait Awhile error model: the forecast is
the actual series plus i.i.d. Gaussian noise with standard deviation ``forecast_error × mean
intensity`` (seeded), optionally denoised (``forecast_smoothing_slots``), used for every decision; emissions are always evaluated on the actual series.
Jobs are planned one by one in arrival order (``BatchOrder.AS_GIVEN``), each seeing the capacity
the earlier ones hold, as the operator would plan them online. The oracle is the same planner fed
the actual series.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from carbonshift.core import BatchOrder, Capacity, Job, Plan, PlannerOptions, RegionSignals, plan_jobs, smooth_forecast
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


def run(trace: Trace, workload: Sequence[SimJob], scenario: Scenario) -> dict[str, object]:
    frame = trace.frame
    start = frame.index[0].to_pydatetime()
    end = frame.index[-1].to_pydatetime() + trace.step.to_pytimedelta()
    slot = trace.step.to_pytimedelta()
    hours = slot.total_seconds() / 3600.0
    actual = {r: frame[r].to_numpy(dtype=np.float64) for r in scenario.regions}
    usable = [j for j in workload if j.submit_at >= start and j.deadline <= end]
    jobs = [
        Job(id=j.id, submit_at=j.submit_at, duration=j.duration, deadline=j.deadline, power_w=scenario.power_w,
            allowed_regions=scenario.regions, home_region=scenario.home, interruptible=scenario.interruptible)
        for j in usable
    ]
    home = actual[scenario.home]
    at_once: list[float] = []  # each job's emissions if run at once at home
    for j in usable:
        first = math.ceil((j.nominal_start - start) / slot - 1e-9)
        need = j.duration / slot
        whole = math.ceil(need - 1e-9)
        ci = home[first : first + whole]
        at_once.append(float(ci[:-1].sum() + (need - (whole - 1)) * ci[-1]) * scenario.power_w * hours / 1000.0)
    baseline = sum(at_once)

    def evaluate(plans: list[Plan]) -> tuple[float, int, int]:
        total, misses, infeasible = 0.0, 0, 0
        for i, (job, plan) in enumerate(zip(jobs, plans)):
            if not plan.feasible or plan.end is None:
                # The operator runs such a job at once (DeadlineUnmeetable): charge what that emits,
                # so that infeasible jobs never count as savings.
                infeasible += 1
                total += at_once[i]
                continue
            total += _emissions(plan, actual, hours)
            if plan.end > job.deadline:
                misses += 1
        return total, misses, infeasible

    oracle_plans = plan_jobs(jobs, _signals(trace, scenario, actual), options=scenario.options, order=BatchOrder.AS_GIVEN)
    oracle, _, _ = evaluate(oracle_plans)
    planned_runs, misses, infeasible = [], 0, 0
    for rep in range(max(1, scenario.repetitions)):
        if scenario.forecast_error > 0:
            rng = np.random.default_rng(scenario.seed + rep)
            forecast = {r: v + rng.normal(0.0, scenario.forecast_error * float(v.mean()), size=v.shape[0]) for r, v in actual.items()}
        else:
            forecast = actual
        if scenario.forecast_smoothing_slots > 1:
            forecast = {r: smooth_forecast(v, scenario.forecast_smoothing_slots) for r, v in forecast.items()}
        plans = plan_jobs(jobs, _signals(trace, scenario, forecast), options=scenario.options, order=BatchOrder.AS_GIVEN)
        grams, rep_misses, rep_infeasible = evaluate(plans)
        planned_runs.append(grams)
        misses += rep_misses
        infeasible += rep_infeasible
    planned = float(np.mean(planned_runs))

    def pct(value: float) -> float:
        return round(100.0 * (1.0 - value / baseline), 3) if baseline > 0 else 0.0

    gain_oracle = baseline - oracle
    return {
        "jobs": len(jobs),
        "baseline_g": round(baseline, 3),
        "planned_g": round(planned, 3),
        "oracle_g": round(oracle, 3),
        "savings_pct": pct(planned),
        "oracle_savings_pct": pct(oracle),
        "fraction_of_oracle": round((baseline - planned) / gain_oracle, 4) if gain_oracle > 0 else 1.0,
        "deadline_misses": misses,
        "infeasible": infeasible,
        "repetitions": max(1, scenario.repetitions),
        "planned_g_by_repetition": [round(x, 3) for x in planned_runs],
    }
