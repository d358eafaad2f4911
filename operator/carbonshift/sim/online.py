"""Plan a workload on forecasts issued in time, and replay the operator's cycle.

Why this module exists: ``engine`` plans every job once, on one series that covers its whole
window. A real service issues forecasts over time and only so far ahead, and the operator
re-plans every cycle. Two modes, both through the core planner (``plan_jobs``) and scored on
actuals with ``engine``'s baseline and oracle:

- ``whole_window``: each job planned once at submission, on the forecast issued then (the papers'
  mode, kept for comparison with them);
- ``online`` (``carbonshift simulate``'s default): every slot, every waiting job is
  re-planned on the forecast issued at that slot; the operator's hysteresis keeps a decision unless
  the new plan emits ``replan_min_improvement`` less than the decided slots cost on the same
  series (``core.recost``; the figure decided on when they are not all on it) (``controller.cycle``);
  a job starts when its decided start comes. An interruptible job is committed to its decided slots when its first
  slot comes (the operator suspends and resumes the member Job on them).

``policy`` (``core.uncertainty.ForecastPolicy``) turns an issued forecast into the series the
planner sees: bias corrected, blended with history, an uncertainty premium on waiting, and
slots beyond the forecast's horizon valued by ``core.stopping`` (so long-slack jobs keep their
slack and jobs longer than the horizon are still planned).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np

from carbonshift.core import BatchOrder, Job, Plan, PlannerOptions, RegionSignals, Snapshot, build_snapshot, plan_jobs
from carbonshift.core.recost import slots_cost_g
from carbonshift.core.slots import job_window
from carbonshift.sim import engine
from carbonshift.sim.forecasts import ForecastSource
from carbonshift.sim.traces import Trace
from carbonshift.sim.workloads import SimJob


class Conditioner:
    """What the planner sees of a forecast issued at slot ``t`` (identity by default).

    ``pivot`` and ``pivot_slots``: the leads of the run "not shifting" stands for (a job's
    preferred start, else lead 0 and one slot), for a policy whose premium on moving pivots there.
    """

    def condition(self, t: int, issued: np.ndarray, *, pivot: int = 0, pivot_slots: int = 1) -> np.ndarray:
        return issued


@dataclass(frozen=True)
class Setup:
    region: str
    interruptible: bool = False
    options: PlannerOptions = PlannerOptions()
    power_w: float = 1000.0
    replan_min_improvement: float = 0.05
    bound: bool = True  # report ``bound_g``, engine's lower bound on any placement's emissions


@dataclass
class _JobState:
    job: Job
    sim: SimJob
    earliest: int
    limit: int  # first slot past the deadline
    start: int | None = None  # decided start (absolute slot)
    slots: tuple[int, ...] = ()
    fractions: tuple[float, ...] = ()
    expected_g: float = math.inf
    feasible: bool = True
    done: bool = False


def _prepare(trace: Trace, workload: Sequence[SimJob], setup: Setup) -> tuple[list[SimJob], list[Job], dict[str, object]]:
    """The jobs ``engine.run`` scores, and its baseline and oracle (the yardstick of every mode)."""
    scenario = engine.Scenario(regions=(setup.region,), home=setup.region, interruptible=setup.interruptible,
                               options=setup.options, power_w=setup.power_w)
    reference = engine.run(trace, workload, scenario, bound=setup.bound)
    start = trace.frame.index[0].to_pydatetime()
    end = trace.frame.index[-1].to_pydatetime() + trace.step.to_pytimedelta()
    usable = [j for j in workload if j.submit_at >= start and j.deadline <= end]
    jobs = [Job(id=j.id, submit_at=j.submit_at, duration=j.duration, deadline=j.deadline, power_w=setup.power_w,
                allowed_regions=(setup.region,), home_region=setup.region, interruptible=setup.interruptible,
                preferred_start=engine.preferred_start(j))
            for j in usable]
    return usable, jobs, reference


def _score(trace: Trace, setup: Setup, usable: list[SimJob], states: list[_JobState],
           reference: dict[str, object]) -> dict[str, object]:
    actual = trace.frame[setup.region].to_numpy(dtype=np.float64)
    slot = trace.step.to_pytimedelta()
    hours = slot.total_seconds() / 3600.0
    origin = trace.frame.index[0].to_pydatetime()
    total, misses, infeasible = 0.0, 0, 0
    for sim, state in zip(usable, states):
        if not state.feasible or not state.slots:
            infeasible += 1
            total += _at_once(actual, origin, slot, sim, setup.power_w)
            continue
        ci = actual[list(state.slots)]
        total += float((np.asarray(state.fractions) * ci).sum() * setup.power_w * hours / 1000.0)
        end = origin + slot * (state.slots[-1] + state.fractions[-1])
        if end > sim.deadline + timedelta(seconds=1e-6):
            misses += 1
    baseline = float(reference["baseline_g"])  # type: ignore[arg-type]
    oracle = float(reference["oracle_g"])  # type: ignore[arg-type]
    bound = reference.get("bound_g")
    return {
        "jobs": len(usable), "unplaced_jobs": infeasible, "baseline_g": round(baseline, 3), "planned_g": round(total, 3),
        "oracle_g": round(oracle, 3), "bound_g": bound,
        **engine.savings_fields(baseline, total, oracle, None if bound is None else float(bound)),  # type: ignore[arg-type]
        "deadline_misses": misses, "infeasible": infeasible,
    }


def _at_once(actual: np.ndarray, origin: datetime, slot: timedelta, job: SimJob, power_w: float) -> float:
    # the engine's price of a job run at once: the same figure as each job's share of the baseline
    return engine.run_at_once_g(actual, origin, slot, job.nominal_start, job.duration, power_w)


def _windows(trace: Trace, jobs: list[Job], options: PlannerOptions) -> list[tuple[int, int]]:
    origin = trace.frame.index[0].to_pydatetime()
    slot = trace.step.to_pytimedelta()
    out = []
    for job in jobs:
        w = job_window(job, origin, slot, options)
        out.append((w.earliest, max(w.slot_limit, w.slot_limit_nomargin)))
    return out


def _pivots(trace: Trace, jobs: list[Job], options: PlannerOptions) -> list[tuple[int, int] | None]:
    """Per job, the absolute slot of its preferred start and its run length (``None``: no preference)."""
    origin = trace.frame.index[0].to_pydatetime()
    slot = trace.step.to_pytimedelta()
    out: list[tuple[int, int] | None] = []
    for job in jobs:
        w = job_window(job, origin, slot, options)
        out.append(None if w.preferred is None else (w.preferred, w.n_slots))
    return out


def _groups(members: list[int], pivots: list[tuple[int, int] | None], t: int) -> dict[tuple[int, int], list[int]]:
    """``members`` by the leads of their "not shifting" run at issue slot ``t`` ((0, 1): run now)."""
    out: dict[tuple[int, int], list[int]] = {}
    for i in members:
        p = pivots[i]
        key = (p[0] - t, p[1]) if p is not None and p[0] > t else (0, 1)
        out.setdefault(key, []).append(i)
    return out


def _signals(trace: Trace, region: str, t: int, values: np.ndarray) -> list[RegionSignals]:
    origin = trace.frame.index[0].to_pydatetime()
    slot = trace.step.to_pytimedelta()
    return [RegionSignals(region=region, start=origin + slot * t, slot=slot, intensity_g_per_kwh=values)]


def _adopt(state: _JobState, plan: Plan, t: int) -> None:
    state.feasible = plan.feasible and plan.end is not None
    if not plan.slots:
        state.start, state.slots, state.fractions = None, (), ()
        return
    state.slots = tuple(int(s) + t for s in plan.slots)
    state.fractions = tuple(float(f) for f in plan.slot_fractions)
    state.start = state.slots[0]
    state.expected_g = plan.expected_g


def _decided_g(state: _JobState, snap: Snapshot, t: int, region: str, power_w: float, slot: timedelta) -> float:
    """The hysteresis's yardstick, as the operator's (``controller.cycle.plan.decided_cost_g``): the
    decided slots costed on the series issued at ``t``; the figure decided on when they do not
    hold the whole run (a plan past the end of its grid) or are not all on this one."""
    if abs(sum(state.fractions) - state.job.duration / slot) > 1e-6:
        return state.expected_g
    now_g = slots_cost_g(snap, region, [s - t for s in state.slots], state.fractions, power_w)
    return state.expected_g if now_g is None else now_g


def whole_window(trace: Trace, workload: Sequence[SimJob], setup: Setup, source: ForecastSource,
                 conditioner: Conditioner | None = None) -> dict[str, object]:
    """Plan each job once, at submission, on the forecast issued then."""
    conditioner = conditioner or Conditioner()
    usable, jobs, reference = _prepare(trace, workload, setup)
    windows = _windows(trace, jobs, setup.options)
    pivots = _pivots(trace, jobs, setup.options)
    states = [_JobState(job, sim, e, lim) for job, sim, (e, lim) in zip(jobs, usable, windows)]
    by_issue: dict[int, list[int]] = {}
    for i, (e, _) in enumerate(windows):
        by_issue.setdefault(e, []).append(i)
    n_total = len(trace.frame)
    for t, everyone in sorted(by_issue.items()):
        n = min(n_total, max(windows[i][1] for i in everyone) + 1) - t
        issued = source.issue(t, n)
        for (pivot, pivot_slots), members in _groups(everyone, pivots, t).items():
            values = conditioner.condition(t, issued.copy(), pivot=pivot, pivot_slots=pivot_slots)
            plans = plan_jobs([jobs[i] for i in members], _signals(trace, setup.region, t, values),
                              options=setup.options, order=BatchOrder.AS_GIVEN)
            for i, plan in zip(members, plans):
                _adopt(states[i], plan, t)
                if not states[i].slots:
                    states[i].feasible = False  # the operator's fallback: run at once (scored at the baseline)
    return {**_score(trace, setup, usable, states, reference), "mode": "whole-window", "forecast": source.name}


def online(trace: Trace, workload: Sequence[SimJob], setup: Setup, source: ForecastSource,
           conditioner: Conditioner | None = None) -> dict[str, object]:
    """Replay the operator: re-plan every waiting job every slot, with hysteresis; start when due."""
    conditioner = conditioner or Conditioner()
    usable, jobs, reference = _prepare(trace, workload, setup)
    windows = _windows(trace, jobs, setup.options)
    pivots = _pivots(trace, jobs, setup.options)
    states = [_JobState(job, sim, e, lim) for job, sim, (e, lim) in zip(jobs, usable, windows)]
    order = sorted(range(len(states)), key=lambda i: windows[i][0])
    origin = trace.frame.index[0].to_pydatetime()
    slot = trace.step.to_pytimedelta()
    n_total = len(trace.frame)
    waiting: list[int] = []
    nxt = 0
    t = windows[order[0]][0] if order else 0
    keep = 1.0 - setup.replan_min_improvement
    while nxt < len(order) or waiting:
        if not waiting and nxt < len(order):
            t = max(t, windows[order[nxt]][0])
        while nxt < len(order) and windows[order[nxt]][0] <= t:
            waiting.append(order[nxt])
            nxt += 1
        now = origin + slot * t
        n = min(n_total, max(windows[i][1] for i in waiting) + 1) - t
        issued = source.issue(t, n)
        planned: dict[int, Plan] = {}
        seen: dict[int, Snapshot] = {}  # the series each job was planned on, to re-cost its decision
        for (pivot, pivot_slots), members in _groups(waiting, pivots, t).items():
            values = conditioner.condition(t, issued.copy(), pivot=pivot, pivot_slots=pivot_slots)
            live = [replace(jobs[i], submit_at=max(jobs[i].submit_at, now)) for i in members]
            snap = build_snapshot(_signals(trace, setup.region, t, values))
            planned.update(zip(members, plan_jobs(live, snap, options=setup.options, order=BatchOrder.AS_GIVEN)))
            seen.update((i, snap) for i in members)
        still: list[int] = []
        for i in waiting:
            plan = planned[i]
            state = states[i]
            if state.start is not None and state.start <= t:
                state.done = True  # due: dispatched as decided
                continue
            must_change = state.start is None or not plan.feasible or any(
                c.value in ("RunNowDeadlineNear", "DeadlineUnmeetable") for c in plan.codes)
            if must_change:
                _adopt(state, plan, t)
            else:
                decided = _decided_g(state, seen[i], t, setup.region, setup.power_w, slot)
                if plan.expected_g < decided * keep:
                    _adopt(state, plan, t)
                elif abs(decided - state.expected_g) > max(1.0, setup.replan_min_improvement * state.expected_g):
                    state.expected_g = decided  # as the operator refreshes a kept decision's expectedGrams
            if state.start is not None and state.start <= t:
                state.done = True
            elif not state.slots:
                state.done = True  # nothing placeable: scored as run at once
            else:
                still.append(i)
        waiting = still
        t += 1
    return {**_score(trace, setup, usable, states, reference), "mode": "online", "forecast": source.name}
