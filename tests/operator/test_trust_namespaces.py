"""(Named to run after test_operator.py: the shared operator's accelerated clock is fresh there.)

Jobs run in the members as their tenant could run them there itself (issue #12.1, .3, .5, .7,
.9): in the namespace of the same name (created only if the admin allows it, with the admin's
Pod Security level), judged by the member's own admission before anything is created, only in
clusters open to the namespace, within the namespace's fair share, and an operator touches
only the Jobs its own hub made."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from operator_support import REGIONS, _member_ready, caj_manifest, member_manifest, wait_until

pytestmark = pytest.mark.cluster
PSA = "pod-security.kubernetes.io"


def condition(status: dict, type_: str) -> dict:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def jobs_in(control_plane, cluster: str, namespace: str) -> list[dict[str, Any]]:
    out = control_plane.kubectl(cluster, "-n", namespace, "get", "jobs", "-o", "json", check=False)
    return json.loads(out.stdout)["items"] if out.returncode == 0 else []


@pytest.fixture
def extra_member(control_plane, operator) -> Iterator[Any]:
    """Registers more MemberClusters (on the existing physical clusters) for one test."""
    names: list[str] = []

    def add(name: str, physical: str, region: str, **spec: Any) -> None:
        manifest = member_manifest(name, REGIONS[physical][0], REGIONS[physical][1], None)
        manifest["spec"]["kubeconfigSecretRef"]["name"] = f"member-{physical}"
        manifest["spec"].update(region=region, **spec)
        control_plane.kubectl("hub", "apply", "-f", "-", input=json.dumps(manifest))
        names.append(name)
        wait_until(lambda: _member_ready(control_plane, name), what=f"{name} Ready", on_fail=operator.log_tail)

    yield add
    for name in names:
        control_plane.kubectl("hub", "delete", "membercluster", name, check=False)


@pytest.fixture
def member_policy(control_plane) -> Iterator[Any]:
    """A ValidatingAdmissionPolicy (a member's policy engine) on one namespace of a member."""
    made: list[tuple[str, str]] = []

    def add(cluster: str, namespace: str, expression: str, message: str) -> None:
        name = f"t-{uuid.uuid4().hex[:8]}"
        policy = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
                  "metadata": {"name": name},
                  "spec": {"failurePolicy": "Fail",
                           "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                                   "operations": ["CREATE"], "resources": ["pods"]}]},
                           "validations": [{"expression": expression, "message": message}]}}
        binding = {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
                   "metadata": {"name": name},
                   "spec": {"policyName": name, "validationActions": ["Deny"],
                            "matchResources": {"namespaceSelector": {
                                "matchLabels": {"kubernetes.io/metadata.name": namespace}}}}}
        for body in (policy, binding):
            control_plane.kubectl(cluster, "apply", "-f", "-", input=json.dumps(body))
        made.append((cluster, name))
        control_plane.kubectl(cluster, "create", "namespace", namespace, check=False)
        probe = {"apiVersion": "v1", "kind": "Pod",
                 "metadata": {"name": "probe", "namespace": namespace,
                              "labels": {"batch.kubernetes.io/controller-uid": "probe"}},
                 "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        # The policy is in force once a server-side dry run of a matching pod is refused.
        wait_until(lambda: control_plane.kubectl(cluster, "create", "--dry-run=server", "-f", "-",
                                                 input=json.dumps(probe), check=False).returncode != 0,
                   timeout=30, what="the member policy in force")

    yield add
    for cluster, name in made:
        control_plane.kubectl(cluster, "delete", "validatingadmissionpolicybinding,validatingadmissionpolicy", name,
                              check=False)


def test_a_job_runs_in_its_own_namespace_created_with_the_admins_pod_security_level(operator, hub, make_namespace,
                                                                                    control_plane) -> None:
    team_a, team_b = make_namespace("hub", "team-a"), make_namespace("hub", "team-b")
    for ns in (team_a, team_b):
        hub.apply(ns, caj_manifest("work", regions=["eu-de"], max_delay="1m", pod_seconds=20))
    for ns in (team_a, team_b):
        status = wait_until(lambda ns=ns: (s := hub.status(ns, "work")).get("memberJob") and s, what="dispatch",
                            on_fail=operator.log_tail)
        assert status["memberJob"]["namespace"] == ns  # never one namespace shared by the hub's namespaces
        [member_job] = jobs_in(control_plane, "eu-de", ns)
        assert member_job["metadata"]["labels"]["carbonshift.io/job-uid"] == hub.caj(ns, "work")["metadata"]["uid"]
        labels = json.loads(control_plane.kubectl("eu-de", "get", "namespace", ns, "-o", "json").stdout
                            )["metadata"]["labels"]
        for mode in ("enforce", "warn", "audit"):
            assert labels[f"{PSA}/{mode}"] == "restricted" and labels[f"{PSA}/{mode}-version"] == "latest"


def test_a_missing_member_namespace_waits_for_the_admin_and_is_never_created(operator, hub, make_namespace,
                                                                             control_plane, extra_member) -> None:
    extra_member("de-manual", "eu-de", "de-manual", createNamespaces=False)
    ns = make_namespace("hub", "manual")
    hub.apply(ns, caj_manifest("job", regions=["de-manual"], max_delay="1m", pod_seconds=2))
    status = wait_until(lambda: (s := hub.status(ns, "job")) and condition(s, "Dispatched").get("reason")
                        == "MemberNamespaceMissing" and s, what="MemberNamespaceMissing", on_fail=operator.log_tail)
    assert status["phase"] == "Waiting" and ns in condition(status, "Dispatched")["message"]
    for _ in range(10):  # a window: nothing made in the member, the namespace included
        assert control_plane.kubectl("eu-de", "get", "namespace", ns, check=False).returncode != 0
        time.sleep(0.5)
    try:
        control_plane.kubectl("eu-de", "create", "namespace", ns)  # the admin creates it, unlabelled
        wait_until(lambda: hub.status(ns, "job").get("phase") == "Succeeded", timeout=90, what="Succeeded",
                   on_fail=operator.log_tail)
        labels = json.loads(control_plane.kubectl("eu-de", "get", "namespace", ns, "-o", "json").stdout
                            )["metadata"].get("labels") or {}
        assert not any(k.startswith(PSA) for k in labels)  # an existing namespace is never edited
        assert len(jobs_in(control_plane, "eu-de", ns)) == 1
    finally:
        control_plane.kubectl("eu-de", "delete", "namespace", ns, "--wait=false", check=False)


def test_the_members_admission_refusal_is_reported_before_anything_is_created(operator, hub, make_namespace,
                                                                             control_plane, member_policy) -> None:
    ns = make_namespace("hub", "refused")
    member_policy("eu-gb", ns, "object.spec.containers.all(c, c.image.startsWith('registry.example/'))",
                  "images must come from registry.example")
    hub.apply(ns, caj_manifest("job", regions=["eu-gb"], max_delay="1m", pod_seconds=2))
    status = wait_until(lambda: (s := hub.status(ns, "job")) and condition(s, "Dispatched").get("reason")
                        == "MemberAdmissionRefused" and s, what="MemberAdmissionRefused", on_fail=operator.log_tail)
    assert "registry.example" in condition(status, "Dispatched")["message"]
    assert status["phase"] == "Waiting"
    assert any(e["type"] == "Warning" and e["reason"] == "MemberAdmissionRefused" for e in hub.events(ns, "job"))
    for _ in range(16):
        assert not jobs_in(control_plane, "eu-gb", ns), "a Job was created although the member refuses its pods"
        assert hub.status(ns, "job").get("phase") == "Waiting"
        time.sleep(0.5)


def test_pods_refused_after_dispatch_are_reported_and_never_called_running(operator, hub, make_namespace,
                                                                           control_plane, member_policy) -> None:
    ns = make_namespace("hub", "nopods")
    member_policy("eu-gb", ns, "!has(object.metadata.labels) || "
                  "!('batch.kubernetes.io/controller-uid' in object.metadata.labels)",
                  "Job pods are not allowed here")
    hub.apply(ns, caj_manifest("job", regions=["eu-gb"], max_delay="1m", pod_seconds=2))
    status = wait_until(lambda: (s := hub.status(ns, "job")) and condition(s, "Dispatched").get("reason")
                        == "MemberPodsRefused" and s, timeout=60, what="MemberPodsRefused", on_fail=operator.log_tail)
    assert "Job pods are not allowed here" in condition(status, "Dispatched")["message"]
    assert any(e["type"] == "Warning" and e["reason"] == "MemberPodsRefused" for e in hub.events(ns, "job"))
    for _ in range(10):
        assert hub.status(ns, "job").get("phase") == "Dispatched"
        time.sleep(0.5)


def test_allowed_namespaces_holds_when_two_clusters_serve_one_region(operator, hub, make_namespace, control_plane,
                                                                     extra_member) -> None:
    # "aa-de" comes first by name in region eu-de, but is closed to the job's namespace.
    extra_member("aa-de", "eu-de", "eu-de", allowedNamespaces=["someone-else"])
    ns = make_namespace("hub", "allowed")
    for i in range(3):
        hub.apply(ns, caj_manifest(f"job-{i}", regions=["eu-de"], max_delay="1m", pod_seconds=2))
    for i in range(3):
        status = wait_until(lambda i=i: (s := hub.status(ns, f"job-{i}")).get("phase") == "Succeeded" and s,
                            timeout=90, what="Succeeded", on_fail=operator.log_tail)
        assert status["memberJob"]["cluster"] == "eu-de" and status["decision"]["cluster"] == "eu-de"
    made_for = {j["metadata"]["labels"]["carbonshift.io/member-cluster"] for j in jobs_in(control_plane, "eu-de", ns)}
    assert made_for == {"eu-de"}


def test_one_namespace_gets_only_its_share_of_a_member(operator, hub, make_namespace, control_plane,
                                                       extra_member) -> None:
    extra_member("gb-fair", "eu-gb", "gb-fair", capacity={"maxConcurrentJobs": 50, "maxJobsPerNamespace": 1})
    ns = make_namespace("hub", "fair")
    names = [f"job-{i}" for i in range(3)]
    for name in names:
        hub.apply(ns, caj_manifest(name, regions=["gb-fair"], max_delay="1m", pod_seconds=3))
    most, share_full = 0, False
    end = time.monotonic() + 120
    while time.monotonic() < end:
        active = [j for j in jobs_in(control_plane, "eu-gb", ns)
                  if not any(c["type"] in ("Complete", "Failed") and c["status"] == "True"
                             for c in (j.get("status") or {}).get("conditions") or [])]
        most = max(most, len(active))
        statuses = [hub.status(ns, n) for n in names]
        share_full |= any(condition(s, "Dispatched").get("reason") == "NamespaceShareFull" for s in statuses)
        if all(s.get("phase") == "Succeeded" for s in statuses):
            break
        time.sleep(0.3)
    assert all(hub.status(ns, n).get("phase") == "Succeeded" for n in names), operator.log_tail()
    assert most == 1 and share_full


def test_an_operator_touches_only_the_jobs_of_its_own_hub(operator, hub, make_namespace, control_plane) -> None:
    ns = make_namespace("hub", "owner")
    control_plane.kubectl("eu-de", "create", "namespace", ns, check=False)
    ours = json.loads(control_plane.kubectl("hub", "get", "namespace", "kube-system", "-o", "json").stdout
                      )["metadata"]["uid"]
    try:
        for name, hub_id in (("theirs", "another-hub"), ("ours", ours)):
            # A Job whose CarbonAwareJob does not exist: an orphan for the hub that made it.
            job = {"apiVersion": "batch/v1", "kind": "Job",
                   "metadata": {"name": name, "namespace": ns,
                                "labels": {"app.kubernetes.io/managed-by": "carbonshift", "carbonshift.io/hub": hub_id,
                                           "carbonshift.io/job-uid": str(uuid.uuid4()),
                                           "carbonshift.io/member-cluster": "eu-de"},
                                "annotations": {"carbonshift.io/source": f"{ns}/{name}"}},
                   "spec": {"suspend": True, "template": {"spec": {"restartPolicy": "Never", "containers": [
                       {"name": "c", "image": "busybox"}]}}}}
            control_plane.kubectl("eu-de", "apply", "-f", "-", input=json.dumps(job))
        wait_until(lambda: [j["metadata"]["name"] for j in jobs_in(control_plane, "eu-de", ns)] == ["theirs"],
                   timeout=30, what="our orphan collected", on_fail=operator.log_tail)
        for _ in range(12):  # the other hub's Job stays, scan after scan
            assert [j["metadata"]["name"] for j in jobs_in(control_plane, "eu-de", ns)] == ["theirs"]
            time.sleep(0.5)
    finally:
        control_plane.kubectl("eu-de", "delete", "namespace", ns, "--wait=false", check=False)
