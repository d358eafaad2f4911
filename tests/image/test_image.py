"""The operator image, built by `make image`, runs as the chart's Deployment runs it and does its job.

`helm install` of the chart on the local hub makes the Deployment, its ReplicaSet makes the Pod,
the scheduler binds it to a kwok node. kwok runs no containers, so tests/image/kubelet.py runs
that Pod for real: its image, arguments, env, ServiceAccount token (TokenRequest, bound to the
Pod) with the CA and namespace at /var/run/secrets/kubernetes.io/serviceaccount,
KUBERNETES_SERVICE_HOST/PORT, read-only root file system with the /tmp emptyDir, uid 65532, no
capabilities. The operator in it must elect itself leader, plan a CarbonAwareJob, dispatch it
into a member cluster (a member Job appears), and serve /metrics and its probes.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from image_support import HUB, REPO_ROOT, Helm
from kubelet import Kubelet, RunningPod, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.container]
MEMBER = "eu-de"


@dataclass(frozen=True)
class Release:
    name: str
    namespace: str


@pytest.fixture
def release(helm: Helm, control_plane: Any) -> Iterator[Release]:
    suffix = uuid.uuid4().hex[:6]
    rel = Release(f"img-{suffix}", f"cs-image-{suffix}")
    control_plane.kubectl(HUB, "create", "namespace", rel.namespace)
    # As a careful admin would: the operator's namespace enforces the "restricted" level.
    control_plane.kubectl(HUB, "label", "namespace", rel.namespace, "pod-security.kubernetes.io/enforce=restricted")
    helm.run("install", rel.name, str(REPO_ROOT / "charts" / "carbonshift"), "--namespace", rel.namespace)
    try:
        yield rel
    finally:
        helm.run("uninstall", rel.name, "--namespace", rel.namespace, "--wait=false", check=False)
        control_plane.kubectl(HUB, "delete", "namespace", rel.namespace, "--wait=false", check=False)


@pytest.fixture
def operator_pod(release: Release, kubelet: Kubelet, image: str) -> Iterator[RunningPod]:
    pod = kubelet.wait_for_pod(release.namespace, f"app.kubernetes.io/instance={release.name}")
    running = kubelet.run(pod)
    try:
        yield running
    finally:
        running.remove()


def _job_manifest(name: str, region: str) -> dict[str, Any]:
    pod_spec = {
        "restartPolicy": "Never",
        "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "work", "image": "busybox:1.36", "command": ["sh", "-c", "sleep 5"],
                        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
    }
    return {"apiVersion": "carbonshift.io/v1alpha1", "kind": "CarbonAwareJob", "metadata": {"name": name},
            "spec": {"maxDelay": "20m", "estimatedDuration": "10m", "power": {"watts": 100},
                     "placement": {"allowedRegions": [region]},
                     "template": {"spec": {"backoffLimit": 0, "template": {"spec": pod_spec}}}}}


def test_the_image_runs_as_the_charts_pod_and_dispatches_a_job(
        operator_pod: RunningPod, release: Release, control_plane: Any, make_namespace: Any, tmp_path: Path) -> None:
    pod = operator_pod
    deployment = json.loads(control_plane.kubectl(HUB, "-n", release.namespace, "get", "deploy", "-o", "json")
                            .stdout)["items"][0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert pod.spec["containers"][0]["args"] == container["args"]  # the chart's arguments, nothing added
    assert container["securityContext"]["readOnlyRootFilesystem"] is True

    def log() -> str:
        return pod.logs()

    # The chart's ServiceAccount, by its own token: it takes the Lease in its namespace.
    def leader() -> str | None:
        out = control_plane.kubectl(HUB, "-n", release.namespace, "get", "lease", "-o", "json", check=False)
        items = json.loads(out.stdout)["items"] if out.returncode == 0 else []
        return next((i["spec"].get("holderIdentity") for i in items if i["spec"].get("holderIdentity")), None)

    holder = wait_until(leader, 90, "the operator pod taking the leader Lease", log)
    assert pod.name in holder

    status, body = wait_until(lambda: (r := _get(pod, "metrics", "/metrics")) and r[0] == 200 and r, 60,
                              "/metrics answering", log)
    assert "carbonshift_" in body
    probes = {kind: container[kind] for kind in ("startupProbe", "livenessProbe", "readinessProbe") if kind in container}
    assert {"livenessProbe", "readinessProbe"} <= set(probes), "the chart's Deployment has no probes"
    for kind, probe in probes.items():
        wait_until(lambda p=probe: pod.probe(p)[0], 60, f"{kind} succeeding", lambda p=probe: pod.probe(p)[1] + log())

    # A member cluster, registered as the quickstart says: its kubeconfig in a Secret of the
    # operator's namespace (the only Secrets the chart lets it read).
    suffix = release.name.split("-")[-1]
    region, member = f"img-{suffix}", f"img-{suffix}"
    secret = control_plane.kubectl(HUB, "create", "secret", "generic", "member-kubeconfig", "-n", release.namespace,
                                   f"--from-file=kubeconfig={control_plane.kubeconfig(MEMBER)}",
                                   "--dry-run=client", "-o", "json").stdout
    control_plane.kubectl(HUB, "apply", "-f", "-", input=secret)
    member_manifest = {
        "apiVersion": "carbonshift.io/v1alpha1", "kind": "MemberCluster", "metadata": {"name": member},
        "spec": {"region": region, "zone": "DE", "createNamespaces": True,
                 "kubeconfigSecretRef": {"name": "member-kubeconfig", "namespace": release.namespace, "key": "kubeconfig"},
                 "carbonSignal": {"provider": "trace", "trace": {"path": "DE"}}}}
    control_plane.kubectl(HUB, "apply", "-f", "-", input=json.dumps(member_manifest))
    try:
        wait_until(lambda: _member_phase(control_plane, member) == "Ready", 90, f"MemberCluster {member} Ready",
                   lambda: json.dumps(_member(control_plane, member).get("status"), indent=1) + log())
        jobs_ns = make_namespace(HUB, "img-jobs")
        # Green enough at any intensity: the job goes now, whatever hour the trace shows.
        policy = {"apiVersion": "carbonshift.io/v1alpha1", "kind": "CarbonPolicy", "metadata": {"name": "default"},
                  "spec": {"runNowBelowIntensity": 5000}}
        control_plane.kubectl(HUB, "-n", jobs_ns, "apply", "-f", "-", input=json.dumps(policy))
        control_plane.kubectl(HUB, "-n", jobs_ns, "apply", "-f", "-", input=json.dumps(_job_manifest("report", region)))
        uid = json.loads(control_plane.kubectl(HUB, "-n", jobs_ns, "get", "caj", "report", "-o", "json").stdout
                         )["metadata"]["uid"]

        def member_jobs() -> list[dict[str, Any]]:
            out = control_plane.kubectl(MEMBER, "get", "jobs", "-A", "-l", f"carbonshift.io/job-uid={uid}", "-o", "json")
            return json.loads(out.stdout)["items"]

        def status() -> dict[str, Any]:
            return json.loads(control_plane.kubectl(HUB, "-n", jobs_ns, "get", "caj", "report", "-o", "json")
                              .stdout).get("status") or {}

        jobs = wait_until(member_jobs, 90, "the member Job", lambda: json.dumps(status(), indent=1) + log())
        assert len(jobs) == 1
        decision = wait_until(lambda: status().get("decision"), 30, "the decision in status", log)
        assert decision["cluster"] == member and decision["region"] == region
        metrics = _get(pod, "metrics", "/metrics")[1]
        assert "carbonshift_" in metrics
    finally:
        control_plane.kubectl(HUB, "delete", "mc", member, "--wait=false", check=False)

    # The pod kept to what the chart allows: nothing in the log says it was refused anything.
    assert "Forbidden" not in log() and "Read-only file system" not in log(), log()
    assert pod.running(), log()
    # SIGTERM, as the kubelet sends it: the operator stops within the chart's grace period and
    # hands the Lease back, so another replica need not wait for it to expire.
    pod.stop(int(deployment["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)))
    assert not pod.running()
    assert leader() is None, log()


def _get(pod: RunningPod, port: str, path: str) -> tuple[int, str] | None:
    try:
        return pod.get(port, path)
    except OSError:
        return None


def _member(control_plane: Any, name: str) -> dict[str, Any]:
    out = control_plane.kubectl(HUB, "get", "mc", name, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else {}


def _member_phase(control_plane: Any, name: str) -> str | None:
    return (_member(control_plane, name).get("status") or {}).get("phase")
