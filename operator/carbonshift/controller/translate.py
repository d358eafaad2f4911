"""Translation between the resources (pydantic API models) and the decision core (pure).

Time semantics: a job submitted at ``t`` with ``maxDelay`` ``d`` and ``estimatedDuration`` ``D``
must finish by ``t + d + D`` (it may *start* up to ``d`` late); ``deadline`` is an end time, and
the policy's maxDelay caps it the same way (a policy's limit holds whichever field the job uses).

Power: :func:`job_power_w` is the one rule for how much power a job draws, used for planning,
budgets and accounting alike. Declared power is raised to what the requested CPUs draw at least,
so a tenant cannot declare 1 W to slip under a cluster's power budget.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from carbonshift.api import CarbonAwareJob
from carbonshift.api.duration import format_duration
from carbonshift.api.job import DecisionMethod, JobReason, format_saved
from carbonshift.core import Job, Plan, PlannerOptions, ReasonCode
from carbonshift.signals.series import SeriesKind
from carbonshift.controller.validation import EffectivePolicy
from carbonshift.timefmt import parse_iso, to_iso

if TYPE_CHECKING:
    from carbonshift.controller.signalhub import RegionReading


#: Watts assumed for a job that declares neither power nor energy and requests no CPU.
NOMINAL_POWER_W: Final = 1.0


def policy_deadline(job: CarbonAwareJob, policy: EffectivePolicy, submit_at: datetime) -> datetime:
    """The latest end the policy allows: submitted + policy maxDelay + estimatedDuration."""
    return submit_at + policy.max_delay + job.spec.estimated_duration


def job_deadline(job: CarbonAwareJob, policy: EffectivePolicy, submit_at: datetime) -> datetime:
    """When the job must have finished: its deadline (or submitted + its maxDelay + duration),
    capped by the policy's maxDelay either way."""
    if job.spec.deadline is not None:
        own = job.spec.deadline
    else:
        max_delay = job.spec.max_delay if job.spec.max_delay is not None else policy.max_delay
        own = submit_at + max_delay + job.spec.estimated_duration
    return min(own, policy_deadline(job, policy, submit_at))


def deadline_capped(job: CarbonAwareJob, policy: EffectivePolicy, submit_at: datetime) -> str | None:
    """A sentence for status when the policy's maxDelay moved the job's own deadline earlier; else None."""
    if job.spec.deadline is None or job.spec.deadline <= policy_deadline(job, policy, submit_at):
        return None
    capped = policy_deadline(job, policy, submit_at)
    return (f"deadline {to_iso(job.spec.deadline)} capped to {to_iso(capped)} by the maxDelay "
            f"{format_duration(policy.max_delay)} of {policy.source}")


@dataclass(frozen=True)
class PowerEstimate:
    """The power used for a job's plan, budget and accounting, and why it differs from the declared one."""

    watts: float
    raised: bool  # True when declared (or nominal) power was below the CPU floor
    message: str  # empty unless raised


_CPU_SUFFIX: Final = {"n": 1e-9, "u": 1e-6, "m": 1e-3, "": 1.0, "k": 1e3, "M": 1e6, "G": 1e9, "T": 1e12,
                      "P": 1e15, "E": 1e18, "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40,
                      "Pi": 2.0**50, "Ei": 2.0**60}
_CPU_QUANTITY: Final = re.compile(r"^\+?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE]([+-]?[0-9]+))?(n|u|m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?$")


def cpu_cores(quantity: Any) -> float:
    """A Kubernetes CPU quantity (``500m``, ``2``, ``1.5``) in cores; 0 for anything else."""
    if isinstance(quantity, bool):
        return 0.0
    if isinstance(quantity, int | float):
        return float(quantity) if math.isfinite(quantity) and quantity > 0 else 0.0
    match = _CPU_QUANTITY.match(str(quantity).strip()) if isinstance(quantity, str) else None
    if match is None:
        return 0.0
    number, exponent, suffix = match.groups()
    value = float(number) * (10.0 ** int(exponent) if exponent else 1.0) * _CPU_SUFFIX[suffix or ""]
    return value if math.isfinite(value) else 0.0


def requested_cpus(job_spec: dict[str, Any]) -> float:
    """CPUs the job's pods request at once: per pod (containers' requests, else limits) x pods in parallel."""
    pod_template = job_spec.get("template") if isinstance(job_spec, dict) else None
    pod = (pod_template or {}).get("spec") if isinstance(pod_template, dict) else None
    containers = (pod or {}).get("containers") if isinstance(pod, dict) else None
    per_pod = 0.0
    for container in containers if isinstance(containers, list) else []:
        resources = container.get("resources") if isinstance(container, dict) else None
        resources = resources if isinstance(resources, dict) else {}
        requests, limits = resources.get("requests"), resources.get("limits")
        cpu = (requests or {}).get("cpu") if isinstance(requests, dict) else None
        if cpu is None and isinstance(limits, dict):
            cpu = limits.get("cpu")  # Kubernetes sets requests from limits when only limits are given
        per_pod += cpu_cores(cpu)
    parallelism, completions = job_spec.get("parallelism", 1), job_spec.get("completions")
    pods = parallelism if isinstance(parallelism, int) and not isinstance(parallelism, bool) else 1
    if isinstance(completions, int) and not isinstance(completions, bool):
        pods = min(pods, completions)
    return per_pod * max(pods, 1)


def job_power_w(model: CarbonAwareJob, min_watts_per_cpu: float) -> PowerEstimate:
    """The one power rule: declared power (or energy / estimatedDuration, or a nominal 1 W when
    neither is given), raised to requested CPUs x ``min_watts_per_cpu``."""
    spec = model.spec
    hours = spec.estimated_duration.total_seconds() / 3600.0
    if spec.power is not None:
        declared, what = spec.power.watts, f"declared power {spec.power.watts:g} W"
    elif spec.energy is not None and hours > 0:
        declared = spec.energy.watt_hours / hours
        what = f"power from declared energy ({spec.energy.watt_hours:g} Wh over {format_duration(spec.estimated_duration)}) {declared:.3g} W"
    else:
        declared, what = NOMINAL_POWER_W, f"nominal power {NOMINAL_POWER_W:g} W (no power or energy declared)"
    cpus = requested_cpus(spec.template.spec)
    floor = cpus * min_watts_per_cpu
    if floor <= declared:
        return PowerEstimate(watts=declared, raised=False, message="")
    return PowerEstimate(watts=floor, raised=True,
                         message=f"{what} raised to {floor:.3g} W: the template requests {cpus:g} CPUs at once, "
                                 f"and the cluster admin counts at least {min_watts_per_cpu:g} W per CPU (minWattsPerCpu)")


def home_region(job: CarbonAwareJob, regions: tuple[str, ...]) -> str | None:
    """Where the job would run without carbonshift: its preferred region, else the first allowed."""
    preferred = job.spec.placement.preferred_region
    if preferred in regions:
        return preferred
    listed = [r for r in (job.spec.placement.allowed_regions or []) if r in regions]
    return listed[0] if listed else (regions[0] if regions else None)


def core_job(job: CarbonAwareJob, policy: EffectivePolicy, regions: tuple[str, ...], submit_at: datetime,
             *, earliest: datetime | None = None, min_watts_per_cpu: float = 0.0) -> Job:
    """The core's view of ``job``; ``earliest`` moves the submit time (e.g. re-planning later).

    The deadline is capped by the policy's maxDelay (:func:`job_deadline`); the power is
    :func:`job_power_w`'s.
    """
    spec = job.spec
    deadline = job_deadline(job, policy, submit_at)
    return Job(
        id=f"{job.metadata.namespace}/{job.metadata.name}",
        submit_at=max(submit_at, earliest) if earliest else submit_at,
        duration=spec.estimated_duration,
        deadline=deadline,
        power_w=job_power_w(job, min_watts_per_cpu).watts,
        allowed_regions=regions,
        home_region=home_region(job, regions),
        interruptible=spec.interruptible,
    )


def planner_options(policy: EffectivePolicy) -> PlannerOptions:
    return PlannerOptions(
        safety_margin_fraction=policy.forecast_safety_margin,
        run_now_below_g_per_kwh=policy.run_now_below_g_per_kwh,
    )


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
        out.append({"start": to_iso(start), "end": to_iso(end)})
    return out


def decision_intervals(decision: dict[str, Any], duration: timedelta) -> list[tuple[datetime, datetime]]:
    """The time a ``status.decision`` runs: its slot runs (interruptible), else ``duration`` from its start
    (the inverse of :func:`merged_slots`, for re-costing the decision on newer signals)."""
    runs = [(parse_iso(s["start"]), parse_iso(s["end"])) for s in decision.get("slots") or []]
    if runs:
        return runs
    start = parse_iso(decision["start"])
    return [(start, start + duration)]


def method_of(plan: Plan, interruptible: bool) -> DecisionMethod:
    if ReasonCode.NO_SIGNAL_FALLBACK in plan.codes:
        return DecisionMethod.FALLBACK
    return DecisionMethod.CHEAPEST_SLOTS if interruptible else DecisionMethod.SLIDING_WINDOW


def decision_from_plan(plan: Plan, cluster: str, now: datetime, interruptible: bool,
                       extra_reasons: list[dict[str, str]] | None = None) -> dict[str, Any]:
    """The ``status.decision`` object (camelCase, as the CRD stores it)."""
    start = plan.start or now
    # NaN-safe: unknown emissions (no signal) count as the baseline, so they never show as a saving
    expected = plan.expected_g if plan.expected_g == plan.expected_g else plan.baseline_g
    baseline = plan.baseline_g if plan.baseline_g == plan.baseline_g else expected
    expected = expected if expected == expected else 0.0
    baseline = baseline if baseline == baseline else expected
    reasons = [{"code": r.code.value, "message": r.message[:1024]} for r in plan.reasons]
    reasons.extend(extra_reasons or [])
    return {
        "cluster": cluster,
        "region": plan.region,
        "start": to_iso(start),
        "slots": merged_slots(plan) if interruptible else [],
        "expectedGrams": round(max(expected, 0.0), 3),
        "baselineGrams": round(max(baseline, 0.0), 3),
        "savedGrams": round(baseline - expected, 3) + 0.0,  # + 0.0 turns -0.0 into 0.0
        "reasons": reasons,
        "decidedAt": to_iso(now),
        "method": method_of(plan, interruptible),
    }


def saved_display(decision: dict[str, Any]) -> str:
    return format_saved(float(decision.get("savedGrams") or 0.0), float(decision.get("baselineGrams") or 0.0))


def admission_reasons(job: CarbonAwareJob, policy: EffectivePolicy, submit_at: datetime,
                      min_watts_per_cpu: float) -> list[dict[str, str]]:
    """Decision reasons saying where the operator did not take the job's word: a deadline capped
    by the policy (``DeadlineCapped``), declared power raised to the CPU floor (``PowerRaised``)."""
    reasons = []
    capped = deadline_capped(job, policy, submit_at)
    if capped:
        reasons.append({"code": JobReason.DEADLINE_CAPPED, "message": capped[:1024]})
    power = job_power_w(job, min_watts_per_cpu)
    if power.raised:
        reasons.append({"code": JobReason.POWER_RAISED, "message": power.message[:1024]})
    return reasons


def signal_reasons(reading: RegionReading | None, plan: Plan | None = None) -> list[dict[str, str]]:
    """A ``BuiltinForecast`` reason when the chosen region was planned on the operator's own
    forecast (its provider gives none, or the provider's failed), so nobody mistakes it for the
    provider's; a ``LearnedForecast`` reason saying what the learned forecast policy changed and,
    when ``plan`` reaches past the forecast, that this part is a valuation from history (its start
    a provisional threshold), not a forecast."""
    if reading is None:
        return []
    reasons = []
    if reading.kind == SeriesKind.BUILTIN_FORECAST:
        reasons.append({"code": JobReason.BUILTIN_FORECAST,
                        "message": f"{reading.source} gave no usable forecast: planned on the operator's built-in "
                                   "day-ahead forecast from the signal's own history"[:1024]})
    if reading.conditioning:
        beyond = _past_forecast(reading, plan)
        message = f"{reading.region}: {reading.conditioning}"
        # the part past the forecast first: the conditioning text may be cut at 1024 characters
        reasons.append({"code": JobReason.LEARNED_FORECAST,
                        "message": (f"{beyond}; {message}" if beyond else message)[:1024]})
    return reasons


def _past_forecast(reading: RegionReading, plan: Plan | None) -> str | None:
    """Why a plan reaching past the forecast is not a measured saving (``core.stopping``)."""
    if plan is None or reading.valued_from is None or plan.start is None:
        return None
    times = plan.slot_times()
    end = plan.end if plan.end is not None else (times[-1] + plan.slot_length if times and plan.slot_length else None)
    if end is None or end <= reading.valued_from:
        return None
    since = to_iso(reading.valued_from)
    if plan.start >= reading.valued_from:
        return (f"start provisional: it lies past the forecast (hours from {since} are valued from history), so it is a "
                "threshold to beat, re-planned as the forecast reaches it; expectedGrams is that valuation, not a forecast")
    return (f"the run reaches past the forecast: its hours from {since} are valued from history, not forecast, "
            "and expectedGrams counts them at that value")
