"""Step 3 of a cycle: plan (pure: no I/O, no clock but the view's ``now``).

All waiting jobs are planned together by the decision core, jobs already running holding their
capacity; each plan then becomes the job's decision in its status patch unless the decision it
has is kept (hysteresis): a decision changes only when it must (its cluster went away, its
deadline no longer holds) or when the new plan emits clearly less (``replanMinImprovement``) than
the decided window costs on the same signals (``core.recost``), not than it was expected to cost
when it was decided: a newer forecast may have made that window dearer or cheaper.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import numpy as np

from carbonshift.api import JobConditionType, JobPhase, JobReason, SignalFallback
from carbonshift.controller.cycle.context import CycleView, JobContext
from carbonshift.controller.cycle.unconfirmed import unconfirmed_cluster
from carbonshift.controller.settings import OperatorSettings
from carbonshift.controller.signalhub import with_battery_reserve
from carbonshift.controller.status import same_decision, with_decision
from carbonshift.controller.translate import (admission_reasons, core_job, decision_from_plan, decision_intervals,
                                              job_power_w, planner_options, saved_display, signal_reasons)
from carbonshift.core import Job, Plan, ReasonCode, RegionSignals, Snapshot, build_snapshot, plan_job, plan_jobs
from carbonshift.core.recost import window_cost_g
from carbonshift.timefmt import parse_iso, to_iso

log = logging.getLogger(__name__)


def region_signals(view: CycleView, fresh_only: bool, max_age: timedelta) -> list[RegionSignals]:
    """Every read region's signals; with ``fresh_only`` a stale region's intensity is unknown (NaN),
    so the core's fallback (run now) decides for it."""
    signals = []
    for _, reading in sorted(view.readings.items()):
        age = reading.age(view.now)
        stale = reading.error is not None or age is None or age > max_age
        if stale and fresh_only:
            signals.append(reading.signals.with_intensity(np.full(reading.signals.n_slots, np.nan)))
        else:
            signals.append(reading.signals)
    return signals


def commitments(dispatched: list[JobContext], view: CycleView, min_watts_per_cpu: float) -> list[Plan]:
    """Running work holds capacity in its region for the rest of its planned time."""
    plans = (commitment(ctx, view, min_watts_per_cpu) for ctx in dispatched)
    return [plan for plan in plans if plan is not None]


def commitment(ctx: JobContext, view: CycleView, min_watts_per_cpu: float,
               begin: datetime | None = None) -> Plan | None:
    """The capacity the job's decision holds: its region from its start (or ``begin``) for its
    estimated duration, on the slot grid of this cycle's signals (None when it holds none)."""
    if not view.readings:
        return None
    decision = ctx.current("decision") or {}
    if ctx.current("phase") == JobPhase.SUSPENDED or not decision.get("region"):
        return None
    any_reading = next(iter(view.readings.values())).signals
    start, slot = any_reading.start, any_reading.slot
    n = max(r.signals.n_slots for r in view.readings.values())  # (regions' grids may differ in length)
    begin = begin or parse_iso(decision["start"])
    end = begin + ctx.model.spec.estimated_duration
    first = max(0, int((begin - start) / slot))
    last = min(n, math.ceil((end - start) / slot))
    if last <= first:
        return None
    slots = tuple(range(first, last))
    power = job_power_w(ctx.model, min_watts_per_cpu).watts
    return Plan(job_id=ctx.key, feasible=True, region=decision["region"], start=begin, end=end,
                slots=slots, slot_fractions=(1.0,) * len(slots), it_power_w=power,
                facility_power_w=power, expected_g=0.0, baseline_g=0.0, reasons=())


def holds_due_decision(ctx: JobContext, view: CycleView) -> bool:
    """A decision whose start has come, still possible: it is dispatched as decided (``adopt_plan``
    keeps it), so it holds its capacity as decided instead of being planned again."""
    old = ctx.current("decision")
    if not old or ctx.status.get("observedGeneration") != ctx.generation:
        return False
    return (parse_iso(old["start"]) <= view.now and view.usable(old.get("cluster"), ctx.namespace)
            and old.get("region") in ctx.regions)


def held_by(ctx: JobContext, plan: Plan, view: CycleView, min_watts_per_cpu: float) -> Plan | None:
    """What a planned job holds: its plan when that became its decision, else what its decision says."""
    decision = ctx.current("decision") or {}
    if plan.region is not None and decision.get("region") == plan.region and plan.start is not None \
            and decision.get("start") and abs(parse_iso(decision["start"]) - plan.start) < timedelta(seconds=1):
        return plan
    return commitment(ctx, view, min_watts_per_cpu)


def core_job_of(ctx: JobContext, view: CycleView, settings: OperatorSettings) -> Job:
    submitted = ctx.submitted or view.now
    return core_job(ctx.model, ctx.policy, ctx.regions, submitted, earliest=view.now,
                    min_watts_per_cpu=settings.min_watts_per_cpu)


def plan_waiting(waiting: list[JobContext], held: list[Plan], view: CycleView, settings: OperatorSettings) -> None:
    """Plans ``waiting`` jobs around the capacity ``held`` by others; decisions go into each patch,
    and a job whose decision holds capacity gets it as ``ctx.plan`` (also held by the jobs planned
    after it: a run-now plan for a deadline that cannot be met holds its room like any other)."""
    held = list(held)
    kept = {ctx.uid for ctx in waiting if holds_due_decision(ctx, view)}
    for ctx in waiting:
        if ctx.uid in kept:
            ctx.plan = commitment(ctx, view, settings.min_watts_per_cpu)
            if ctx.plan is not None:
                held.append(ctx.plan)
    groups: dict[tuple[Any, ...], list[JobContext]] = {}
    for ctx in waiting:  # jobs that see the signals the same way are planned together
        fresh_only = ctx.policy.signal_fallback == SignalFallback.RUN_NOW
        key = (fresh_only, ctx.policy.max_signal_age, ctx.policy.forecast_safety_margin,
               ctx.policy.run_now_below_g_per_kwh, ctx.policy.battery_reserve_fraction)
        groups.setdefault(key, []).append(ctx)
    for (fresh_only, max_age, _, _, reserve), members in groups.items():
        signals = with_battery_reserve(region_signals(view, fresh_only, max_age), reserve)
        mark_staleness(members, view, max_age)
        if not signals:
            for ctx in members:
                ctx.set(phase=JobPhase.WAITING, message="no reachable member cluster serves the job's regions")
                ctx.condition(JobConditionType.SCHEDULED, False, JobReason.NO_REACHABLE_CLUSTER,
                              f"none of {list(ctx.regions)} has a reachable MemberCluster", view.now)
            continue
        members = [ctx for ctx in members if ctx.uid not in kept]
        if not members:
            continue
        jobs = [core_job_of(ctx, view, settings) for ctx in members]
        snapshot = build_snapshot(until_deadlines(signals, jobs, settings.horizon))
        options = planner_options(members[0].policy)
        try:
            plans: list[Plan | None] = list(plan_jobs(jobs, snapshot, held, options))
        except Exception:  # one job must never block the others: plan them one by one
            log.exception("batch planning failed; planning jobs one by one")
            plans = [_plan_one(ctx, job, snapshot, held, options, view) for ctx, job in zip(members, jobs)]
        for ctx, job, plan in zip(members, jobs, plans):
            if plan is None:
                continue
            adopt_plan(ctx, job, plan, view, settings, decided_g=decided_cost_g(ctx, job, snapshot, held))
            ctx.plan = held_by(ctx, plan, view, settings.min_watts_per_cpu)
            if ctx.plan is not None:
                held.append(ctx.plan)


def until_deadlines(signals: list[RegionSignals], jobs: list[Job], horizon: timedelta) -> list[RegionSignals]:
    """The signals cut after the latest deadline among ``jobs`` (never before ``horizon``): a grid
    that reaches past the horizon (forecastPolicy learned, up to maxPlanningHorizonHours) costs
    planning time only as far as some job may still run."""
    if not signals or not jobs:
        return signals
    first = signals[0]
    need = max(horizon, max(job.deadline for job in jobs) - first.start)
    n = max(int(horizon / first.slot), math.ceil(need / first.slot))
    return [s if s.n_slots <= n else
            replace(s, intensity_g_per_kwh=s.intensity_g_per_kwh[:n],
                    solar_w=None if s.solar_w is None else s.solar_w[:n])
            for s in signals]


def _plan_one(ctx: JobContext, job: Job, snapshot: Any, held: list[Plan], options: Any,
              view: CycleView) -> Plan | None:
    try:
        return plan_job(job, snapshot, held, options)
    except Exception as exc:
        log.exception("planning %s failed", ctx.key)
        ctx.set(phase=JobPhase.WAITING, message=f"the planner failed on this job ({type(exc).__name__}); retrying")
        ctx.condition(JobConditionType.SCHEDULED, False, JobReason.PLANNER_ERROR, f"{type(exc).__name__}: {exc}"[:1024],
                      view.now)
        return None


def mark_staleness(contexts: list[JobContext], view: CycleView, max_age: timedelta) -> None:
    """Condition SignalsStale: which of the job's regions have a failed or too old signal, and the fallback."""
    for ctx in contexts:
        stale = []
        for region in ctx.regions:
            reading = view.readings.get(region)
            if reading is None:
                continue
            age = reading.age(view.now)
            if reading.error or age is None or age > max_age:
                what = reading.error or (f"newest value is {age} old" if age else "no value")
                stale.append(f"{region}: {what}")
        if stale:
            ctx.condition(JobConditionType.SIGNALS_STALE, True, JobReason.SIGNALS_STALE,
                          f"{'; '.join(stale)} (policy fallback: {ctx.policy.signal_fallback})", view.now)
        else:
            ctx.condition(JobConditionType.SIGNALS_STALE, False, JobReason.SIGNALS_FRESH, "all signals are fresh",
                          view.now)


def decided_cost_g(ctx: JobContext, job: Job, snapshot: Snapshot, held: list[Plan]) -> float | None:
    """What the job's current decision costs on this cycle's signals (``snapshot``; the on-site
    energy of the plans ``held`` by others is not its to use). ``None`` without a decision of the
    current spec, or when its window is not (entirely) on the grid: then the hysteresis compares
    with the figure it was decided on."""
    old = ctx.current("decision")
    if not old or not old.get("region") or ctx.status.get("observedGeneration") != ctx.generation:
        return None
    try:
        intervals = decision_intervals(old, job.duration)
    except (KeyError, TypeError, ValueError):  # not a decision this operator wrote: not re-costed
        return None
    return window_cost_g(snapshot, str(old["region"]), intervals, job.it_power_w, held)


def adopt_plan(ctx: JobContext, job: Job, plan: Plan, view: CycleView, settings: OperatorSettings,
               decided_g: float | None = None) -> None:
    """Hysteresis: keep the current decision unless the new plan is clearly better or it must change.

    ``decided_g``: the current decision's window costed on the signals ``plan`` was made on
    (:func:`decided_cost_g`); without it the decision's own ``expectedGrams`` is the yardstick.
    """
    if unconfirmed_cluster(ctx, view) is not None:
        return  # a create sent there may have made the Job: kept until that cluster is looked at
    now = view.now
    old = ctx.current("decision")
    # A deadline that cannot be met any more is no reason to wait: run now, best effort, and say so.
    deadline_near = bool({ReasonCode.RUN_NOW_DEADLINE_NEAR, ReasonCode.DEADLINE_UNMEETABLE} & set(plan.codes))
    member = view.member_for(plan.region, ctx.namespace) if plan.region else None
    if member is None or (not plan.feasible and ReasonCode.DEADLINE_UNMEETABLE not in plan.codes):
        message = "; ".join(r.message for r in plan.reasons) or "no feasible plan"
        ctx.set(phase=JobPhase.WAITING, message=message, observedGeneration=ctx.generation)
        ctx.condition(JobConditionType.SCHEDULED, False, plan.reasons[0].code.value if plan.reasons else JobReason.NO_PLAN,
                      message, now)
        return
    decision = decision_from_plan(plan, str(member.metadata.name), now, ctx.model.spec.interruptible,
                                  admission_reasons(ctx.model, ctx.policy, ctx.submitted or now,
                                                    settings.min_watts_per_cpu)
                                  + signal_reasons(view.readings.get(plan.region or ""), plan))
    costlier = ""  # why a decision the old yardstick would have kept is given up
    if old and ctx.status.get("observedGeneration") == ctx.generation:
        old_start = parse_iso(old["start"])
        old_usable = view.usable(old.get("cluster"), ctx.namespace) and old.get("region") in ctx.regions
        if old_start <= now and old_usable:
            # Due and still possible: it is dispatched as decided (maybe a cycle later under a
            # burst); re-deciding it every cycle would only churn status and Events.
            return
        margin = job.duration * ctx.policy.forecast_safety_margin
        old_ok = old_usable and max(old_start, now) + job.duration + margin <= job.deadline
        if old_ok and not deadline_near:
            keep = 1.0 - settings.replan_min_improvement
            was = float(old.get("expectedGrams") or 0.0)
            now_g = was if decided_g is None else decided_g
            if decision["expectedGrams"] >= now_g * keep:
                refresh_estimate(ctx, old, decided_g, settings)
                return  # the gain is below the hysteresis
            if decision["expectedGrams"] >= was * keep:
                costlier = (f"the decided window now costs {now_g:.0f} g (was {was:.0f} g when decided); "
                            f"new plan {decision['expectedGrams']:.0f} g")
    if same_decision(old, decision):
        return
    if old and old.get("baselineGrams") is not None and ctx.status.get("observedGeneration") == ctx.generation:
        # The baseline is "run at submission in the home region": it does not move on re-plans.
        decision["baselineGrams"] = old["baselineGrams"]
        decision["savedGrams"] = round(old["baselineGrams"] - decision["expectedGrams"], 3)
    if costlier:
        decision["reasons"].append({"code": JobReason.WINDOW_COST_ROSE, "message": costlier[:1024]})
    if ctx.policy.dry_run:
        decision["reasons"].append({"code": JobReason.DRY_RUN, "message": f"{ctx.policy.source} is dry-run: "
                                    "the decision is reported but the job runs at once"})
    ctx.set(**with_decision(ctx.status, decision), savedDisplay=saved_display(decision),
            observedGeneration=ctx.generation)
    first = old is None
    text = summary(decision)
    ctx.set(message=text)
    ctx.condition(JobConditionType.SCHEDULED, True,
                  decision["reasons"][0]["code"] if decision["reasons"] else JobReason.PLANNED, text, now)
    ctx.condition(JobConditionType.DEADLINE_AT_RISK, deadline_near,
                  JobReason.RUN_NOW_DEADLINE_NEAR if deadline_near else JobReason.DEADLINE_SAFE,
                  "the deadline leaves no room to wait: running now" if deadline_near
                  else f"planned to finish before {to_iso(job.deadline)}", now)
    if not (first and (parse_iso(decision["start"]) <= now or ctx.policy.dry_run)):
        ctx.event(JobReason.DECIDED if first else JobReason.REPLANNED,
                  f"{costlier}. {text}"[:1024] if costlier else text)  # else the Dispatched event says it


def refresh_estimate(ctx: JobContext, old: dict[str, Any], decided_g: float | None, settings: OperatorSettings) -> None:
    """A kept decision's ``expectedGrams`` (and ``savedGrams``) follow what its window costs on the
    newest signals, once that moved by more than ``replanMinImprovement`` (at least 1 g) from the
    recorded figure: a user reads the current estimate, and a waiting job's status is not
    rewritten every cycle for noise. ``decidedAt``, the window and the reasons stay as decided."""
    if decided_g is None or decided_g != decided_g:
        return
    was = float(old.get("expectedGrams") or 0.0)
    if abs(decided_g - was) <= max(1.0, settings.replan_min_improvement * was):
        return
    refreshed = dict(old)
    refreshed["expectedGrams"] = round(max(decided_g, 0.0), 3)
    baseline = old.get("baselineGrams")
    if baseline is not None:
        refreshed["savedGrams"] = round(float(baseline) - refreshed["expectedGrams"], 3) + 0.0
    ctx.set(decision=refreshed, savedDisplay=saved_display(refreshed))
    if ctx.current("message") == summary(old):  # the decision's own summary, not another step's word
        ctx.set(message=summary(refreshed))


def summary(decision: dict[str, Any]) -> str:
    reasons = "; ".join(r["message"] for r in decision["reasons"][:2])
    return (f"{decision['region']} via {decision['cluster']} at {decision['start']}: expected "
            f"{decision['expectedGrams']:.0f} g vs {decision['baselineGrams']:.0f} g baseline. {reasons}")[:1024]
