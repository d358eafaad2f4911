"""When a decided job acts (pure): due or not, inside one of its green windows or between them,
the next moment something is due, and whether suspended work should move to another region."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from carbonshift.api import JobPhase, JobReason, MemberCluster
from carbonshift.controller.cycle.context import CycleView, JobContext
from carbonshift.controller.cycle.plan import core_job_of, region_signals
from carbonshift.controller.manifests import job_progress
from carbonshift.controller.settings import OperatorSettings
from carbonshift.controller.signalhub import with_battery_reserve
from carbonshift.controller.translate import decision_from_plan, planner_options
from carbonshift.core import Job, build_snapshot, plan_job
from carbonshift.timefmt import parse_iso


def is_due(ctx: JobContext, now: datetime) -> bool:
    """A decided job whose start has come (a dry-run policy never delays)."""
    decision = ctx.current("decision")
    if not decision or ctx.patch.get("phase") == JobPhase.PENDING:
        return False
    return ctx.policy.dry_run or parse_iso(decision["start"]) <= now


def wait(ctx: JobContext) -> None:
    """A decided job whose start has not come waits (no API call unless its phase changes)."""
    if ctx.current("decision") and ctx.patch.get("phase") != JobPhase.PENDING \
            and ctx.current("phase") != JobPhase.WAITING:
        ctx.set(phase=JobPhase.WAITING)


def next_due(contexts: list[JobContext], now: datetime) -> datetime | None:
    """The next planned start or window edge of any job: the cycle runs exactly then."""
    due: list[datetime] = []
    for ctx in contexts:
        decision = ctx.current("decision") or {}
        if decision.get("start"):
            due.append(parse_iso(decision["start"]))
        for window in decision.get("slots") or []:
            due.extend((parse_iso(window["start"]), parse_iso(window["end"])))
    future = [d for d in due if d > now]
    return min(future) if future else None


def in_window(decision: dict[str, Any], now: datetime) -> bool:
    return any(parse_iso(w["start"]) <= now < parse_iso(w["end"]) for w in decision.get("slots") or [])


def starts_suspended(decision: dict[str, Any], now: datetime) -> bool:
    """Interruptible work created outside its windows is created suspended."""
    return bool(decision.get("slots")) and not in_window(decision, now)


def window_phase(decision: dict[str, Any], member_job: dict[str, Any], now: datetime) -> tuple[bool, JobPhase, str]:
    """(suspend?, phase, the next window's start or "") for interruptible work following its windows.

    Past its last window and not done (the estimate ran short), it keeps running to the end.
    """
    remaining = [w for w in decision["slots"] if parse_iso(w["end"]) > now]
    suspend = bool(remaining) and not in_window(decision, now)
    if suspend:
        return True, JobPhase.SUSPENDED, remaining[0]["start"]
    return False, JobPhase.RUNNING if job_progress(member_job) == JobPhase.RUNNING else JobPhase.DISPATCHED, ""


def relocation(ctx: JobContext, member: MemberCluster, view: CycleView,
               settings: OperatorSettings) -> tuple[MemberCluster, dict[str, Any]] | None:
    """(target cluster, new decision) when suspended interruptible work should move to a clearly
    greener allowed region (and the job allows it); else None."""
    decision = ctx.current("decision")
    if not ctx.model.spec.placement.allow_relocation or ctx.current("phase") != JobPhase.SUSPENDED \
            or len(view.readings) < 2:
        return None
    future = [w for w in decision["slots"] if parse_iso(w["end"]) > view.now]
    remaining = sum((parse_iso(w["end"]) - max(view.now, parse_iso(w["start"])) for w in future), timedelta())
    if remaining <= timedelta(0):
        return None
    snapshot = build_snapshot(with_battery_reserve(region_signals(view, False, ctx.policy.max_signal_age),
                                                   ctx.policy.battery_reserve_fraction))
    base = core_job_of(ctx, view, settings)
    job = Job(id=base.id, submit_at=view.now, duration=remaining, deadline=base.deadline, power_w=base.power_w,
              energy_wh=base.energy_wh, allowed_regions=base.allowed_regions, home_region=member.spec.region,
              interruptible=True)
    options = planner_options(ctx.policy)
    anywhere = plan_job(job, snapshot, (), options)
    if not anywhere.feasible or anywhere.region in (None, member.spec.region):
        return None
    target = view.member_for(anywhere.region, ctx.namespace)
    if target is None:
        return None
    stay = plan_job(Job(**{**job.__dict__, "allowed_regions": (member.spec.region,)}), snapshot, (), options)
    if stay.feasible and anywhere.expected_g >= stay.expected_g * (1.0 - settings.replan_min_improvement):
        return None
    new = decision_from_plan(anywhere, str(target.metadata.name), view.now, True, extra_reasons=[
        {"code": JobReason.RELOCATED, "message": f"moved from {member.spec.region}: remaining work emits "
                                                 f"{anywhere.expected_g:.0f} g there instead of {stay.expected_g:.0f} g"}])
    new["baselineGrams"] = decision.get("baselineGrams", new["baselineGrams"])
    new["savedGrams"] = round(new["baselineGrams"] - new["expectedGrams"], 3)
    return target, new
