"""Kueue's objects as carbonshift reads and writes them (pure: dicts in, dataclasses and patches out).

Why this module exists: the Kueue rooms must read a Workload the same way in the check, the
dispatcher and the accounting, and write exactly the fields they own; Kueue v1beta2 is the only
version spoken (v1beta1 is deprecated and goes through Kueue's conversion webhook).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

GROUP, VERSION = "kueue.x-k8s.io", "v1beta2"
API_VERSION = f"{GROUP}/{VERSION}"
MULTIKUEUE_CONTROLLER = "kueue.x-k8s.io/multikueue"
# The field manager of the check's entries (server-side apply, one list-map entry per check).
CHECK_FIELD_MANAGER = "carbonshift-green-window"
CPU_SUFFIXES = {"m": 0.001}


def workloads_path(namespace: str | None = None, name: str = "", sub: str = "") -> str:
    base = f"/apis/{GROUP}/{VERSION}" + (f"/namespaces/{namespace}" if namespace else "") + "/workloads"
    return base + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def cluster_path(plural: str, name: str = "", sub: str = "") -> str:
    return f"/apis/{GROUP}/{VERSION}/{plural}" + (f"/{name}" if name else "") + (f"/{sub}" if sub else "")


def owner_path(api_version: str, kind: str, namespace: str, name: str) -> str:
    """The API path of a Workload's owner (Job, Pod, JobSet, RayJob...): plural = lower-case kind + s."""
    plural = kind.lower() + "s"
    prefix = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    return f"{prefix}/namespaces/{namespace}/{plural}/{name}"


def parse_cpu(text: Any) -> float:
    """A Kubernetes CPU quantity ("500m", "2", 1.5) in cores; unparsable counts as 0."""
    value = str(text).strip()
    try:
        if value.endswith("m"):
            return float(value[:-1]) / 1000.0
        return float(value)
    except ValueError:
        return 0.0


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class CheckState:
    name: str
    state: str
    message: str


@dataclass(frozen=True)
class Workload:
    """The parts of a Kueue Workload the rooms decide on."""

    uid: str
    namespace: str
    name: str
    resource_version: str
    created: datetime | None
    queue: str
    owner: tuple[str, str, str] | None  # (apiVersion, kind, name) of the controlling owner
    cpus: float  # all pods' CPU requests together
    max_execution_seconds: int | None
    active: bool
    quota_reserved: bool
    admitted: bool
    finished: bool
    evicted: bool
    cluster_name: str | None
    nominated: tuple[str, ...]
    checks: dict[str, CheckState] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"

    def body_ref(self) -> dict[str, Any]:
        """Enough of the object for an Event's involvedObject."""
        return {"apiVersion": API_VERSION, "kind": "Workload",
                "metadata": {"namespace": self.namespace, "name": self.name, "uid": self.uid}}


def _condition(status: dict[str, Any], type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True" for c in status.get("conditions") or [])


def _owner(meta: dict[str, Any]) -> tuple[str, str, str] | None:
    refs = [r for r in meta.get("ownerReferences") or [] if isinstance(r, dict)]
    chosen = next((r for r in refs if r.get("controller")), refs[0] if refs else None)
    if not chosen:
        return None
    return str(chosen.get("apiVersion", "")), str(chosen.get("kind", "")), str(chosen.get("name", ""))


def _cpus(spec: dict[str, Any]) -> float:
    total = 0.0
    for pod_set in spec.get("podSets") or []:
        count = int(pod_set.get("count") or 1)
        pod = ((pod_set.get("template") or {}).get("spec") or {})
        per_pod = 0.0
        for container in pod.get("containers") or []:
            requests = ((container.get("resources") or {}).get("requests") or {})
            per_pod += parse_cpu(requests.get("cpu", 0))
        total += count * per_pod
    return total


def parse_workload(body: dict[str, Any]) -> Workload:
    meta = body.get("metadata") or {}
    spec = body.get("spec") or {}
    status = body.get("status") or {}
    checks = {}
    for entry in status.get("admissionChecks") or []:
        name = str(entry.get("name", ""))
        checks[name] = CheckState(name, str(entry.get("state", "")), str(entry.get("message", "")))
    return Workload(
        uid=str(meta.get("uid", "")), namespace=str(meta.get("namespace", "")), name=str(meta.get("name", "")),
        resource_version=str(meta.get("resourceVersion", "")),
        created=parse_time(meta.get("creationTimestamp")),
        queue=str(spec.get("queueName", "")),
        owner=_owner(meta),
        cpus=_cpus(spec),
        max_execution_seconds=spec.get("maximumExecutionTimeSeconds"),
        active=spec.get("active", True) is not False,
        quota_reserved=_condition(status, "QuotaReserved"),
        admitted=_condition(status, "Admitted"),
        finished=_condition(status, "Finished"),
        evicted=_condition(status, "Evicted"),
        cluster_name=status.get("clusterName"),
        nominated=tuple(status.get("nominatedClusterNames") or ()),
        checks=checks,
        annotations=dict(meta.get("annotations") or {}),
    )


def checks_by_controller(admission_checks: list[dict[str, Any]]) -> dict[str, str]:
    """AdmissionCheck name -> its controllerName."""
    return {str((c.get("metadata") or {}).get("name")): str((c.get("spec") or {}).get("controllerName"))
            for c in admission_checks}


def check_patch(workload: Workload, check: str, state: str, message: str, now: datetime) -> dict[str, Any]:
    """A server-side apply body setting one entry of ``status.admissionChecks`` (a list map keyed
    by name, so the other checks' entries, Kueue's and MultiKueue's, are left alone)."""
    return {"apiVersion": API_VERSION, "kind": "Workload",
            "metadata": {"name": workload.name, "namespace": workload.namespace},
            "status": {"admissionChecks": [{"name": check, "state": state, "message": message[:32768],
                                            "lastTransitionTime": iso(now)}]}}


def nomination_patch(workload: Workload, clusters: list[str]) -> dict[str, Any]:
    """A merge patch nominating worker clusters; the resourceVersion makes it fail (409) when the
    Workload changed since it was read (e.g. a worker already reserved it)."""
    return {"metadata": {"resourceVersion": workload.resource_version},
            "status": {"nominatedClusterNames": clusters}}


def active_condition_patch(name: str, now: datetime, message: str) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "AdmissionCheck", "metadata": {"name": name},
            "status": {"conditions": [{"type": "Active", "status": "True", "reason": "Active",
                                       "message": message, "lastTransitionTime": iso(now)}]}}
