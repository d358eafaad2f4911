"""What the CRD schema cannot check, and which policy applies to a job (pure, no I/O).

Policy resolution order: the job's own fields, then the CarbonPolicy it names (or the
namespace's ``default``), then the operator's defaults. Problems are returned as sentences a
person can act on; the cycle writes them to status and Events.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from carbonshift.api import CarbonAwareJob, CarbonPolicySpec, MemberCluster
from carbonshift.api.duration import format_duration
from carbonshift.api.policy import DEFAULT_POLICY_NAME, PodSecurity
from carbonshift.controller.settings import DefaultPolicy


@dataclass(frozen=True)
class EffectivePolicy:
    source: str  # e.g. "CarbonPolicy team-a/default" or "operator defaults"
    max_delay: timedelta
    allowed_regions: tuple[str, ...] | None
    run_now_below_g_per_kwh: float | None
    forecast_safety_margin: float
    signal_fallback: str
    max_signal_age: timedelta
    dry_run: bool
    battery_reserve_fraction: float | None
    pod_security: PodSecurity


def resolve_policy(job: CarbonAwareJob, policies: dict[str, CarbonPolicySpec],
                   defaults: DefaultPolicy) -> tuple[EffectivePolicy | None, str | None]:
    """The policy for ``job`` from its namespace's ``policies`` (by name); or a problem."""
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
            max_signal_age=defaults.max_signal_age, dry_run=False, battery_reserve_fraction=None,
            pod_security=PodSecurity(),
        ), None
    spec = policies[name]
    return EffectivePolicy(
        source=f"CarbonPolicy {namespace}/{name}",
        max_delay=spec.max_delay if spec.max_delay is not None else defaults.max_delay,
        allowed_regions=tuple(spec.allowed_regions) if spec.allowed_regions else None,
        run_now_below_g_per_kwh=spec.run_now_below_intensity,
        forecast_safety_margin=spec.forecast_safety_margin,
        signal_fallback=str(spec.signal_fallback),
        max_signal_age=spec.max_signal_age,
        dry_run=spec.dry_run,
        battery_reserve_fraction=spec.battery_reserve_percent / 100.0,
        pod_security=spec.pod_security,
    ), None


def usable_members(namespace: str, members: list[MemberCluster]) -> list[MemberCluster]:
    """MemberClusters that let ``namespace`` run work there (empty allowedNamespaces = all)."""
    return [m for m in members if not m.spec.allowed_namespaces or namespace in m.spec.allowed_namespaces]


def allowed_regions(job: CarbonAwareJob, policy: EffectivePolicy, members: list[MemberCluster]) -> tuple[str, ...]:
    """Regions the job may run in: its placement ∩ the policy's ∩ clusters open to its namespace."""
    open_regions = {m.spec.region for m in usable_members(job.metadata.namespace or "", members)}
    wanted = set(job.spec.placement.allowed_regions or open_regions)
    if policy.allowed_regions is not None:
        wanted &= set(policy.allowed_regions)
    return tuple(sorted(wanted & open_regions))


def pod_security_problems(template: dict[str, Any], rules: PodSecurity) -> list[str]:
    """Template fields the namespace's policy forbids (privileged, hostPath, host namespaces)."""
    pod_spec = ((template.get("spec") or {}).get("template") or {}).get("spec") or {}
    problems: list[str] = []
    if rules.forbid_host_network and pod_spec.get("hostNetwork"):
        problems.append("spec.template.spec.template.spec.hostNetwork is forbidden by the policy")
    if rules.forbid_host_network and (pod_spec.get("hostPID") or pod_spec.get("hostIPC")):
        problems.append("hostPID/hostIPC are forbidden by the policy")
    if rules.forbid_host_path:
        for volume in pod_spec.get("volumes") or []:
            if isinstance(volume, dict) and "hostPath" in volume:
                problems.append(f"volume {volume.get('name')!r} uses hostPath, which the policy forbids")
    if rules.forbid_privileged:
        for kind in ("initContainers", "containers", "ephemeralContainers"):
            for container in pod_spec.get(kind) or []:
                context = (container or {}).get("securityContext") or {}
                if context.get("privileged") or context.get("allowPrivilegeEscalation"):
                    problems.append(f"container {container.get('name')!r} asks for privileges the policy forbids")
                added = ((context.get("capabilities") or {}).get("add")) or []
                if any(str(cap).upper() in {"SYS_ADMIN", "ALL", "NET_ADMIN", "SYS_PTRACE"} for cap in added):
                    problems.append(f"container {container.get('name')!r} adds capabilities the policy forbids")
    return problems


def job_problems(job: CarbonAwareJob, policy: EffectivePolicy, members: list[MemberCluster]) -> list[str]:
    """Everything wrong with ``job`` that the schema could not say; empty when it can be planned."""
    problems: list[str] = []
    pod_spec = (job.spec.template.spec.get("template") or {}).get("spec") or {}
    if not pod_spec.get("containers"):
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
    if not problems and not allowed_regions(job, policy, members):
        problems.append(f"no MemberCluster open to namespace {namespace!r} matches the job's and policy's regions")
    problems.extend(pod_security_problems({"spec": job.spec.template.spec}, policy.pod_security))
    return problems
