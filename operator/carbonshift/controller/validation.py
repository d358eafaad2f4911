"""What the CRD schema cannot check, and which policy applies to a job (pure, no I/O).

Policy resolution order: the job's own fields, then the CarbonPolicy it names (or the
namespace's ``default``), then the operator's defaults. Problems are returned as sentences a
person can act on; the cycle writes them to status and Events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from carbonshift.api import CarbonAwareJob, CarbonPolicySpec, MemberCluster, PodSecurityLevel
from carbonshift.api.duration import format_duration
from carbonshift.api.policy import DEFAULT_BATTERY_RESERVE_PERCENT, DEFAULT_POLICY_NAME, SignalFallback
from carbonshift.controller.podsecurity import job_spec_problems, pod_security_problems
from carbonshift.controller.settings import AdminRules, DefaultPolicy

__all__ = ["EffectivePolicy", "allowed_regions", "job_problems", "member_level", "pod_security_problems",
           "resolve_policy", "usable_members"]


@dataclass(frozen=True)
class EffectivePolicy:
    source: str  # e.g. "CarbonPolicy team-a/default" or "operator defaults"
    max_delay: timedelta
    allowed_regions: tuple[str, ...] | None
    run_now_below_g_per_kwh: float | None
    forecast_safety_margin: float
    signal_fallback: SignalFallback
    max_signal_age: timedelta
    dry_run: bool
    battery_reserve_fraction: float  # of a site battery's capacity, kept for others (batteryReservePercent)
    pod_security_level: str  # the stricter of the admin's (operator setting) and the policy's
    max_parallelism: int = 10
    max_completions: int = 100


def resolve_policy(job: CarbonAwareJob, policies: dict[str, CarbonPolicySpec], defaults: DefaultPolicy,
                   admin: AdminRules | None = None) -> tuple[EffectivePolicy | None, str | None]:
    """The policy for ``job`` from its namespace's ``policies`` (by name); or a problem.

    ``admin`` holds what the cluster admin set in the operator settings (Pod Security level, pod
    count limits); a CarbonPolicy may only make the level stricter.
    """
    admin = admin or AdminRules()
    limits: dict[str, Any] = {"max_parallelism": admin.max_parallelism, "max_completions": admin.max_completions}
    namespace = job.metadata.namespace or ""
    wanted = job.spec.policy
    if wanted is not None and wanted not in policies:
        return None, f"CarbonPolicy {namespace}/{wanted} named in spec.policy does not exist"
    name = wanted if wanted is not None else (DEFAULT_POLICY_NAME if DEFAULT_POLICY_NAME in policies else None)
    if name is None:
        return EffectivePolicy(
            source="operator defaults", max_delay=defaults.max_delay, allowed_regions=None,
            run_now_below_g_per_kwh=defaults.run_now_below_intensity,
            forecast_safety_margin=defaults.forecast_safety_margin, signal_fallback=defaults.signal_fallback,
            max_signal_age=defaults.max_signal_age, dry_run=False,
            battery_reserve_fraction=DEFAULT_BATTERY_RESERVE_PERCENT / 100.0,
            pod_security_level=str(PodSecurityLevel.stricter(admin.pod_security_level)), **limits,
        ), None
    spec = policies[name]
    return EffectivePolicy(
        source=f"CarbonPolicy {namespace}/{name}",
        max_delay=spec.max_delay if spec.max_delay is not None else defaults.max_delay,
        allowed_regions=tuple(spec.allowed_regions) if spec.allowed_regions else None,
        run_now_below_g_per_kwh=spec.run_now_below_intensity,
        forecast_safety_margin=spec.forecast_safety_margin,
        signal_fallback=SignalFallback(spec.signal_fallback),
        max_signal_age=spec.max_signal_age,
        dry_run=spec.dry_run,
        battery_reserve_fraction=spec.battery_reserve_percent / 100.0,
        pod_security_level=str(PodSecurityLevel.stricter(admin.pod_security_level, spec.pod_security_level)),
        **limits,
    ), None


def usable_members(namespace: str, members: list[MemberCluster]) -> list[MemberCluster]:
    """MemberClusters that let ``namespace`` run work there (empty allowedNamespaces = all; a
    namespace whose same-named member namespace a mapping gives to another is left out)."""
    return [m for m in members if m.spec.serves_namespace(namespace)]


def member_level(member: MemberCluster, policy: EffectivePolicy) -> str:
    """The Pod Security level a job must meet in ``member``: its own level if stricter than the policy's."""
    return str(PodSecurityLevel.stricter(policy.pod_security_level, member.spec.pod_security_level))


def _pod(job: CarbonAwareJob) -> tuple[dict[str, Any], dict[str, Any]]:
    """The pod template's spec and annotations (empty when missing or of the wrong type)."""
    template = job.spec.template.spec.get("template")
    template = template if isinstance(template, dict) else {}
    spec, meta = template.get("spec"), template.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    annotations = meta.get("annotations")
    return (spec if isinstance(spec, dict) else {}), (annotations if isinstance(annotations, dict) else {})


def _refused_by(job: CarbonAwareJob, policy: EffectivePolicy, members: list[MemberCluster]) -> dict[str, list[str]]:
    """Member name -> the Pod Security problems of the job at that member's (stricter) level."""
    pod, annotations = _pod(job)
    by_level: dict[str, list[str]] = {}
    refused = {}
    for member in members:
        level = member_level(member, policy)
        if level == policy.pod_security_level:
            continue  # the job as a whole was checked at this level
        if level not in by_level:
            by_level[level] = pod_security_problems(pod, level, annotations=annotations)
        if by_level[level]:
            refused[member.metadata.name or ""] = by_level[level]
    return refused


def allowed_regions(job: CarbonAwareJob, policy: EffectivePolicy, members: list[MemberCluster]) -> tuple[str, ...]:
    """Regions the job may run in: its placement ∩ the policy's ∩ clusters open to its namespace,
    leaving out a region where any such cluster requires a Pod Security level the pod does not meet."""
    usable = usable_members(job.metadata.namespace or "", members)
    refused = _refused_by(job, policy, usable)
    open_regions = {m.spec.region for m in usable}
    open_regions -= {m.spec.region for m in usable if (m.metadata.name or "") in refused}
    wanted = set(job.spec.placement.allowed_regions or open_regions)
    if policy.allowed_regions is not None:
        wanted &= set(policy.allowed_regions)
    return tuple(sorted(wanted & open_regions))


def job_problems(job: CarbonAwareJob, policy: EffectivePolicy, members: list[MemberCluster]) -> list[str]:
    """Everything wrong with ``job`` that the schema could not say; empty when it can be planned."""
    problems: list[str] = []
    pod, annotations = _pod(job)
    if not pod.get("containers"):
        problems.append("spec.template.spec.template.spec.containers must list at least one container")
    if job.spec.max_delay is not None and job.spec.max_delay > policy.max_delay:
        problems.append(f"spec.maxDelay {format_duration(job.spec.max_delay)} exceeds the "
                        f"{format_duration(policy.max_delay)} allowed by {policy.source}")
    requested = set(job.spec.placement.allowed_regions or [])
    if policy.allowed_regions is not None and requested - set(policy.allowed_regions):
        problems.append(f"regions {sorted(requested - set(policy.allowed_regions))} are not allowed by {policy.source}")
    namespace = job.metadata.namespace or ""
    open_regions = {m.spec.region for m in usable_members(namespace, members)}
    if requested - open_regions:
        problems.append(f"no MemberCluster open to namespace {namespace!r} serves regions "
                        f"{sorted(requested - open_regions)}")
    security = pod_security_problems(pod, policy.pod_security_level, annotations=annotations)
    security += job_spec_problems(job.spec.template.spec, max_parallelism=policy.max_parallelism,
                                  max_completions=policy.max_completions)
    if security:
        problems.append(f"the template does not meet Pod Security level {policy.pod_security_level} "
                        f"(set by {_level_source(policy)}): " + _listed(security))
    if not problems and not allowed_regions(job, policy, members):
        refused = _refused_by(job, policy, usable_members(namespace, members))
        if refused:
            name, member_problems = sorted(refused.items())[0]
            problems.append(f"the template does not meet the stricter Pod Security level MemberCluster {name} "
                            f"requires: " + _listed(member_problems))
        else:
            problems.append(f"no MemberCluster open to namespace {namespace!r} matches the job's and policy's regions")
    return [p[:_MAX_PROBLEM_CHARS] for p in problems]


_MAX_LISTED = 6  # problems listed in a status message; the rest are counted
_MAX_PROBLEM_CHARS = 1000  # status.message holds 4096 characters in all


def _listed(problems: list[str]) -> str:
    more = len(problems) - _MAX_LISTED
    return "; ".join(problems[:_MAX_LISTED]) + (f"; and {more} more" if more > 0 else "")


def _level_source(policy: EffectivePolicy) -> str:
    return "the cluster admin" if policy.source == "operator defaults" else f"the cluster admin and {policy.source}"
