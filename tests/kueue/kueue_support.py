"""Helpers for the Kueue tests: queues per test namespace, Kueue Jobs and Pod groups, reading
Workloads on the hub and their copies on the workers, and the operator with the Kueue rooms on.

The operator runs on an accelerated clock (CLOCK_SPEED simulated seconds per real second) and the
members replay bundled 2022 traces from chosen moments (ANCHORS), as in tests/operator.
"""

from __future__ import annotations

import json
import signal
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from members import REGIONS, kubectl, member_manifest, register_members

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))
from operator_support import OperatorProcess, free_port, wait_until  # reused, not copied

CLOCK_SPEED = 1000.0
# eu-de 2022-09-30 19:00 UTC: 458 g/kWh falling to 280 g/kWh four hours later (a greener window);
# eu-gb 2022-12-29 14:00 UTC: 56 g/kWh; us-ca 2022-03-09 20:00 UTC: 133 g/kWh.
ANCHORS = {"eu-de": "2022-09-30T19:00:00Z", "eu-gb": "2022-12-29T14:00:00Z", "us-ca": "2022-03-09T20:00:00Z"}
WORKERS = ("eu-de", "eu-gb", "us-ca")

POD = {
    "restartPolicy": "Never",
    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{"name": "main", "image": "busybox", "command": ["true"],
                    "resources": {"requests": {"cpu": "1", "memory": "64Mi"}},
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
}


def rooms_up(process: OperatorProcess) -> bool:
    """The operator serves its metrics and the Kueue rooms have registered theirs."""
    if process.proc is not None and process.proc.poll() is not None:
        raise AssertionError(f"operator exited with {process.proc.returncode}:\n{process.log_tail(60)}")
    try:
        return "carbonshift_kueue" in process.metrics()
    except OSError:
        return False


def start_operator(control_plane: Any, folder: Path) -> OperatorProcess:
    """`carbonshift run` with only the Kueue rooms (a CarbonAwareJob operator of other tests may run beside it)."""
    settings = folder / "settings.yaml"
    settings.write_text(json.dumps({"kueue": {"enabled": True, "only": True, "periodSeconds": 0.3,
                                              "localRegion": "eu-de"}}))
    port = free_port()
    argv = [sys.executable, "-m", "carbonshift", "run", f"--kubeconfig={control_plane.kubeconfig('hub')}",
            f"--settings={settings}", "--no-leader-election", f"--metrics-port={port}",
            f"--clock-speed={CLOCK_SPEED}"]
    process = OperatorProcess(argv, folder / "operator.log", port)
    process.start()
    wait_until(lambda: rooms_up(process), timeout=60, what="operator /metrics", on_fail=lambda: process.log_tail(60))
    return process


@dataclass
class KueueEnv:
    control_plane: Any
    kueue: Any  # hack/kueue.KueuePlane
    operator: OperatorProcess | None = None
    namespaces: list[str] = field(default_factory=list)
    queues: list[str] = field(default_factory=list)

    def fresh_operator(self) -> None:
        """Restarts the operator, so its clock (and each member's trace) starts again at ANCHORS: a
        test that needs the traces' shape must not depend on how long earlier tests took."""
        assert self.operator is not None
        self.operator.kill(signal.SIGTERM)
        self.operator = start_operator(self.control_plane, self.operator.log_path.parent)

    def register_members(self) -> None:
        plane = self.control_plane.plane
        register_members(plane)
        for name, anchor in ANCHORS.items():
            zone, trace = REGIONS[name]
            kubectl(plane, "hub", "apply", "-f", "-", input=json.dumps(member_manifest(name, zone, trace, anchor)))

    def kubectl(self, cluster: str, *args: str, input: str | None = None, check: bool = True) -> Any:
        return self.control_plane.kubectl(cluster, *args, input=input, check=check)

    def namespace(self, checks: tuple[str, ...] = ("green-window", "multikueue"), cpu: str = "64") -> str:
        """A fresh namespace with its own ClusterQueue (hub quota ``cpu``) on the hub and every worker."""
        name = f"kq-{uuid.uuid4().hex[:8]}"
        self.kueue.ensure_queues(name, cluster_queue=f"cq-{name}", checks=checks, cpu=cpu)
        self.kueue.wait_queues_active(name, cluster_queue=f"cq-{name}")
        self.namespaces.append(name)
        self.queues.append(f"cq-{name}")
        return name

    def job(self, namespace: str, name: str, annotations: dict[str, str] | None = None, cpu: str = "1",
            pod_seconds: float = 5) -> None:
        pod = json.loads(json.dumps(POD))
        pod["containers"][0]["resources"]["requests"]["cpu"] = cpu
        job = {"apiVersion": "batch/v1", "kind": "Job",
               "metadata": {"name": name, "namespace": namespace, "labels": {"kueue.x-k8s.io/queue-name": "default"},
                            "annotations": annotations or {}},
               "spec": {"suspend": True, "backoffLimit": 0, "template": {
                   "metadata": {"annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": f"{pod_seconds}s"}},
                   "spec": pod}}}
        self.kubectl("hub", "apply", "-f", "-", input=json.dumps(job))

    def pod_group(self, namespace: str, group: str, size: int, annotations: dict[str, str] | None = None) -> None:
        for i in range(size):
            pod = {"apiVersion": "v1", "kind": "Pod",
                   "metadata": {"name": f"{group}-{i}", "namespace": namespace,
                                "labels": {"kueue.x-k8s.io/queue-name": "default",
                                           "kueue.x-k8s.io/pod-group-name": group},
                                "annotations": {"kueue.x-k8s.io/pod-group-total-count": str(size),
                                                "pod-complete.stage.kwok.x-k8s.io/delay": "3s",
                                                **(annotations or {})}},
                   "spec": json.loads(json.dumps(POD))}
            self.kubectl("hub", "apply", "-f", "-", input=json.dumps(pod))

    def workloads(self, namespace: str, cluster: str = "hub") -> list[dict[str, Any]]:
        out = self.kubectl(cluster, "-n", namespace, "get", "workloads.v1beta2.kueue.x-k8s.io", "-o", "json",
                           check=False)
        return json.loads(out.stdout)["items"] if out.returncode == 0 else []

    def workload_of(self, namespace: str, owner: str) -> dict[str, Any] | None:
        for wl in self.workloads(namespace):
            if any(ref.get("name") == owner for ref in wl["metadata"].get("ownerReferences") or []):
                return wl
        return None

    def check(self, namespace: str, owner: str, check: str = "green-window") -> dict[str, Any]:
        wl = self.workload_of(namespace, owner) or {}
        for entry in (wl.get("status") or {}).get("admissionChecks") or []:
            if entry.get("name") == check:
                return entry
        return {}

    def remote_jobs(self, namespace: str, name: str) -> dict[str, str]:
        """Worker -> uid of its copy of Job ``name``."""
        copies = {}
        for worker in WORKERS:
            out = self.kubectl(worker, "-n", namespace, "get", "job", name, "-o", "json", check=False)
            if out.returncode == 0:
                copies[worker] = json.loads(out.stdout)["metadata"]["uid"]
        return copies

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        out = self.kubectl("hub", "-n", namespace, "get", "events", "-o", "json",
                           f"--field-selector=involvedObject.name={name}")
        return json.loads(out.stdout)["items"]

    def cleanup(self) -> None:
        for namespace in self.namespaces:
            # kwok completes only Job-owned pods: a plain Pod group keeps running, and Kueue keeps its
            # pods' finalizer until they end; drop it so the namespace can go.
            pods = self.kubectl("hub", "-n", namespace, "get", "pods", "-o", "name", check=False).stdout.split()
            for pod in pods:
                self.kubectl("hub", "-n", namespace, "patch", pod, "--type=merge", "-p",
                             '{"metadata":{"finalizers":null}}', check=False)
        for cluster in ("hub", *WORKERS):
            for namespace in self.namespaces:
                self.kubectl(cluster, "delete", "namespace", namespace, "--wait=false", check=False)
            for queue in self.queues:
                self.kubectl(cluster, "delete", "clusterqueue", queue, "--wait=false", check=False)
