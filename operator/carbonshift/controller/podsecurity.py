"""The Kubernetes Pod Security Standards (baseline, restricted) as an allow-list, plus what a tenant
must not get through carbonshift although PSS says nothing about it (pure, no I/O).

Why here and not only in the member: a template may be written by a hostile tenant, and the
member namespace may carry no Pod Security labels (or labels weaker than the admin wants), so
carbonshift checks the level the cluster admin set before anything is created. Every check
names the allowed values; anything else (including values of the wrong type) is a problem.
Each problem starts with the field path inside the CarbonAwareJob.

Levels follow https://kubernetes.io/docs/concepts/security/pod-security-standards/ (version
"latest" as of Kubernetes 1.34). Windows-specific exemptions are not made: a Windows pod has to
meet the Linux rules, which only ever refuses more.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final

from carbonshift.api import PodSecurityLevel

__all__ = ["POD_PATH", "job_spec_problems", "pod_security_problems"]

#: Where the pod spec sits inside a CarbonAwareJob.
POD_PATH: Final = "spec.template.spec.template.spec"

_BASELINE_CAPABILITIES: Final = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})
_RESTRICTED_CAPABILITIES: Final = frozenset({"NET_BIND_SERVICE"})
_SAFE_SYSCTLS: Final = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
})
_SELINUX_TYPES: Final = frozenset({"", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"})
_SECCOMP_TYPES: Final = frozenset({"RuntimeDefault", "Localhost"})
_APPARMOR_TYPES: Final = frozenset({"RuntimeDefault", "Localhost"})
_RESTRICTED_VOLUMES: Final = frozenset({
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret",
})
_CONTAINER_KINDS: Final = ("initContainers", "containers", "ephemeralContainers")
_PROBES: Final = ("livenessProbe", "readinessProbe", "startupProbe")
_APPARMOR_ANNOTATION: Final = "container.apparmor.security.beta.kubernetes.io/"
# Taints of nodes a tenant's pods must never tolerate their way onto.
_RESERVED_TAINT_PREFIXES: Final = ("node-role.kubernetes.io/", "node.kubernetes.io/unschedulable",
                                   "node.cloudprovider.kubernetes.io/")


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _unset_or_false(value: Any) -> bool:
    return value is None or value is False


def _root_user(value: Any) -> bool:
    """runAsUser allows unset or a positive integer: 0 is root, anything else is not a uid."""
    return value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value > 0)


def _containers(pod: Mapping[str, Any], prefix: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for kind in _CONTAINER_KINDS:
        for index, container in enumerate(_list(pod.get(kind))):
            yield f"{prefix}.{kind}[{index}]", _dict(container)


def _capability(name: Any) -> str:
    text = str(name).upper()
    return text[4:] if text.startswith("CAP_") else text


def _baseline(pod: Mapping[str, Any], prefix: str, annotations: Mapping[str, Any]) -> Iterator[str]:
    level = "baseline"
    for field in ("hostNetwork", "hostPID", "hostIPC"):
        if not _unset_or_false(pod.get(field)):
            yield f"{prefix}.{field}: host namespaces are not allowed ({level})"
    pod_context = _dict(pod.get("securityContext"))
    yield from _context_baseline(pod_context, f"{prefix}.securityContext", level)
    for index, sysctl in enumerate(_list(pod_context.get("sysctls"))):
        name = _dict(sysctl).get("name")
        if name not in _SAFE_SYSCTLS:
            yield f"{prefix}.securityContext.sysctls[{index}].name: {str(name)[:64]!r} is not a safe sysctl ({level})"
    for index, volume in enumerate(_list(pod.get("volumes"))):
        if "hostPath" in _dict(volume):
            yield f"{prefix}.volumes[{index}].hostPath: hostPath volumes are not allowed ({level})"
    for key, value in annotations.items():
        if str(key).startswith(_APPARMOR_ANNOTATION) and value != "runtime/default" and not str(value).startswith("localhost/"):
            yield (f"spec.template.spec.template.metadata.annotations[{key}]: AppArmor profile {str(value)[:64]!r} "
                   f"is not allowed ({level}: runtime/default or localhost/*)")
    for path, container in _containers(pod, prefix):
        context = _dict(container.get("securityContext"))
        yield from _context_baseline(context, f"{path}.securityContext", level)
        if not _unset_or_false(context.get("privileged")):
            yield f"{path}.securityContext.privileged: privileged containers are not allowed ({level})"
        for cap_index, cap in enumerate(_list(_dict(context.get("capabilities")).get("add"))):
            if _capability(cap) not in _BASELINE_CAPABILITIES:
                yield (f"{path}.securityContext.capabilities.add[{cap_index}]: {str(cap)[:64]!r} is not allowed "
                       f"({level} allows only the container runtime's default set)")
        if context.get("procMount") not in (None, "Default"):
            yield f"{path}.securityContext.procMount: must be unset or Default ({level})"
        for port_index, port in enumerate(_list(container.get("ports"))):
            if _dict(port).get("hostPort") not in (None, 0):
                yield f"{path}.ports[{port_index}].hostPort: host ports are not allowed ({level})"
        for handler_path, handler in _handlers(container, path):
            for action in ("httpGet", "tcpSocket"):
                if _dict(handler.get(action)).get("host") not in (None, ""):
                    yield f"{handler_path}.{action}.host: probes and hooks may not reach other hosts ({level})"


def _handlers(container: Mapping[str, Any], path: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    for probe in _PROBES:
        if probe in container:
            yield f"{path}.{probe}", _dict(container.get(probe))
    lifecycle = _dict(container.get("lifecycle"))
    for hook in ("postStart", "preStop"):
        if hook in lifecycle:
            yield f"{path}.lifecycle.{hook}", _dict(lifecycle.get(hook))


def _context_baseline(context: Mapping[str, Any], path: str, level: str) -> Iterator[str]:
    """Rules that apply alike to the pod's and each container's securityContext."""
    if not _unset_or_false(_dict(context.get("windowsOptions")).get("hostProcess")):
        yield f"{path}.windowsOptions.hostProcess: HostProcess containers are not allowed ({level})"
    seccomp = context.get("seccompProfile")
    if seccomp is not None and _dict(seccomp).get("type") not in _SECCOMP_TYPES:
        yield f"{path}.seccompProfile.type: must be RuntimeDefault or Localhost ({level})"
    apparmor = context.get("appArmorProfile")
    if apparmor is not None and _dict(apparmor).get("type") not in _APPARMOR_TYPES:
        yield f"{path}.appArmorProfile.type: must be RuntimeDefault or Localhost ({level})"
    selinux = context.get("seLinuxOptions")
    if selinux is not None:
        options = _dict(selinux)
        if (options.get("type") or "") not in _SELINUX_TYPES:
            yield (f"{path}.seLinuxOptions.type: must be unset or one of "
                   f"{', '.join(sorted(t for t in _SELINUX_TYPES if t))} ({level})")
        for field in ("user", "role"):
            if options.get(field) not in (None, ""):
                yield f"{path}.seLinuxOptions.{field}: must be unset ({level})"


def _restricted(pod: Mapping[str, Any], prefix: str) -> Iterator[str]:
    level = "restricted"
    for index, volume in enumerate(_list(pod.get("volumes"))):
        kinds = [k for k in _dict(volume) if k != "name"]
        for kind in kinds:
            if kind not in _RESTRICTED_VOLUMES:
                yield (f"{prefix}.volumes[{index}].{str(kind)[:64]}: volume type not allowed ({level} allows only "
                       f"{', '.join(sorted(_RESTRICTED_VOLUMES))})")
    pod_context = _dict(pod.get("securityContext"))
    pod_non_root = pod_context.get("runAsNonRoot") is True
    pod_seccomp = _dict(pod_context.get("seccompProfile")).get("type") in _SECCOMP_TYPES
    if pod_context.get("runAsNonRoot") not in (None, True):
        yield f"{prefix}.securityContext.runAsNonRoot: must be true ({level})"
    if _root_user(pod_context.get("runAsUser")):
        yield f"{prefix}.securityContext.runAsUser: must be unset or a non-zero uid; 0 (root) is not allowed ({level})"
    for path, container in _containers(pod, prefix):
        context = _dict(container.get("securityContext"))
        sc = f"{path}.securityContext"
        if context.get("allowPrivilegeEscalation") is not False:
            yield f"{sc}.allowPrivilegeEscalation: must be false ({level})"
        non_root = context.get("runAsNonRoot")
        if non_root is not True and not (non_root is None and pod_non_root):
            yield f"{sc}.runAsNonRoot: must be true, here or in {prefix}.securityContext ({level})"
        if _root_user(context.get("runAsUser")):
            yield f"{sc}.runAsUser: must be unset or a non-zero uid; 0 (root) is not allowed ({level})"
        if context.get("seccompProfile") is None and not pod_seccomp:
            yield (f"{sc}.seccompProfile.type: must be RuntimeDefault or Localhost, here or in "
                   f"{prefix}.securityContext ({level})")
        capabilities = _dict(context.get("capabilities"))
        if "ALL" not in _list(capabilities.get("drop")):
            yield f"{sc}.capabilities.drop: must include ALL ({level})"
        for cap_index, cap in enumerate(_list(capabilities.get("add"))):
            if _capability(cap) not in _RESTRICTED_CAPABILITIES:
                yield f"{sc}.capabilities.add[{cap_index}]: {str(cap)[:64]!r} is not allowed ({level}: only NET_BIND_SERVICE)"


def _carbonshift_rules(pod: Mapping[str, Any], prefix: str) -> Iterator[str]:
    """What PSS does not cover but a tenant could use to reach nodes or evict others."""
    if pod.get("nodeName") not in (None, ""):
        yield f"{prefix}.nodeName: choosing a node by name is not allowed (it bypasses the scheduler); use nodeSelector or affinity"
    for index, toleration in enumerate(_list(pod.get("tolerations"))):
        key = str(_dict(toleration).get("key") or "")
        if not key:
            yield f"{prefix}.tolerations[{index}]: a toleration without a key tolerates every taint, which is not allowed"
        elif key.startswith(_RESERVED_TAINT_PREFIXES):
            yield f"{prefix}.tolerations[{index}].key: {key[:128]!r} is reserved for system workloads"
    priority = pod.get("priorityClassName")
    if isinstance(priority, str) and priority.startswith("system-"):
        yield f"{prefix}.priorityClassName: {priority[:64]!r} is reserved for system workloads"
    elif priority is not None and not isinstance(priority, str):
        yield f"{prefix}.priorityClassName: must be a string"


def pod_security_problems(pod_spec: dict[str, Any], level: str, *,
                          annotations: Mapping[str, Any] | None = None, prefix: str = POD_PATH) -> list[str]:
    """What in ``pod_spec`` the Pod Security Standards ``level`` (baseline | restricted) or
    carbonshift's own rules do not allow; each problem starts with the field path.

    ``annotations`` are the pod template's (AppArmor annotations); ``prefix`` is the path of the
    pod spec used in the messages.
    """
    pod = _dict(pod_spec)
    problems = list(_carbonshift_rules(pod, prefix))
    problems.extend(_baseline(pod, prefix, _dict(annotations)))
    if PodSecurityLevel(level) is PodSecurityLevel.RESTRICTED:
        problems.extend(_restricted(pod, prefix))
    return problems


def job_spec_problems(job_spec: dict[str, Any], *, max_parallelism: int, max_completions: int,
                      prefix: str = "spec.template.spec") -> list[str]:
    """Limits the cluster admin set on how many pods one job may ask for."""
    problems = []
    for field, limit, setting in (("parallelism", max_parallelism, "maxParallelism"),
                                  ("completions", max_completions, "maxCompletions")):
        value = _dict(job_spec).get(field)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            problems.append(f"{prefix}.{field}: must be an integer")
        elif value > limit:
            problems.append(f"{prefix}.{field}: {value} is more than the {limit} the cluster admin allows "
                            f"(operator setting {setting})")
    return problems
