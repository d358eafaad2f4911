"""Translation between the resources (pydantic API models) and the decision core (pure).

Time semantics: a job submitted at ``t`` with ``maxDelay`` ``d`` and ``estimatedDuration`` ``D``
must finish by ``t + d + D`` (it may *start* up to ``d`` late); ``deadline`` is an end time.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from carbonshift.api import CarbonAwareJob
from carbonshift.api.job import format_saved
from carbonshift.core import Job, Plan, PlannerOptions, ReasonCode
from carbonshift.controller.validation import EffectivePolicy


def job_deadline(job: CarbonAwareJob, policy: EffectivePolicy, submit_at: datetime) -> datetime:
    if job.spec.deadline is not None:
        return job.spec.deadline
    max_delay = job.spec.max_delay if job.spec.max_delay is not None else policy.max_delay
    return submit_at + min(max_delay, policy.max_delay) + job.spec.estimated_duration


def home_region(job: CarbonAwareJob, regions: tuple[str, ...]) -> str | None:
    """Where the job would run without carbonshift: its preferred region, else the first allowed."""
    preferred = job.spec.placement.preferred_region
    if preferred in regions:
        return preferred
    listed = [r for r in (job.spec.placement.allowed_regions or []) if r in regions]
    return listed[0] if listed else (regions[0] if regions else None)


def core_job(job: CarbonAwareJob, policy: EffectivePolicy, regions: tuple[str, ...], submit_at: datetime,
             *, earliest: datetime | None = None) -> Job:
    """The core's view of ``job``; ``earliest`` moves the submit time (e.g. re-planning later)."""
    spec = job.spec
    deadline = job_deadline(job, policy, submit_at)
    return Job(
        id=f"{job.metadata.namespace}/{job.metadata.name}",
        submit_at=max(submit_at, earliest) if earliest else submit_at,
        duration=spec.estimated_duration,
        deadline=deadline,
        power_w=spec.power.watts if spec.power else None,
        energy_wh=spec.energy.watt_hours if spec.energy else None,
        allowed_regions=regions,
        home_region=home_region(job, regions),
        interruptible=spec.interruptible,
    )


def planner_options(policy: EffectivePolicy) -> PlannerOptions:
    return PlannerOptions(
        safety_margin_fraction=policy.forecast_safety_margin,
        run_now_below_g_per_kwh=policy.run_now_below_g_per_kwh,
    )


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def merged_slots(plan: Plan) -> list[dict[str, str]]:
    """Contiguous slot runs of a plan as ``[{start, end}]`` (what an interruptible job follows)."""
    if plan.slot_start is None or plan.slot_length is None or not plan.slots:
        return []
    runs: list[list[int]] = []
    for index in plan.slots:
        if runs and index == runs[-1][1] + 1:
            runs[-1][1] = index
        else:
            runs.append([index, index])
    fraction = dict(zip(plan.slots, plan.slot_fractions or (1.0,) * len(plan.slots)))
    out = []
    for first, last in runs:
        start = plan.slot_start + first * plan.slot_length
        # A partly used slot shortens the run it ends (the core uses at most one partial slot).
        end = plan.slot_start + (last + min(1.0, fraction.get(last, 1.0))) * plan.slot_length
        out.append({"start": _iso(start), "end": _iso(end)})
    return out


def method_of(plan: Plan, interruptible: bool) -> str:
    if ReasonCode.NO_SIGNAL_FALLBACK in plan.codes:
        return "fallback"
    return "cheapest-slots" if interruptible else "sliding-window"


def decision_from_plan(plan: Plan, cluster: str, now: datetime, interruptible: bool,
                       extra_reasons: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The ``status.decision`` object (camelCase, as the CRD stores it)."""
    start = plan.start or now
    baseline = plan.baseline_g if plan.baseline_g == plan.baseline_g else plan.expected_g  # NaN-safe
    expected = plan.expected_g if plan.expected_g == plan.expected_g else 0.0
    baseline = baseline if baseline == baseline else expected
    reasons = [{"code": r.code.value, "message": r.message[:1024]} for r in plan.reasons]
    reasons.extend(extra_reasons or [])
    return {
        "cluster": cluster,
        "region": plan.region,
        "start": _iso(start),
        "slots": merged_slots(plan) if interruptible else [],
        "expectedGrams": round(max(expected, 0.0), 3),
        "baselineGrams": round(max(baseline, 0.0), 3),
        "savedGrams": round(baseline - expected, 3) + 0.0,  # + 0.0 turns -0.0 into 0.0
        "reasons": reasons,
        "decidedAt": _iso(now),
        "method": method_of(plan, interruptible),
    }


def saved_display(decision: dict[str, Any]) -> str:
    return format_saved(float(decision.get("savedGrams") or 0.0), float(decision.get("baselineGrams") or 0.0))
