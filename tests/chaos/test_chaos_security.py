"""Security: MemberCluster.spec.allowedNamespaces is enforced; a namespace learns nothing about
another through the operator (status and Events stay in the job's own namespace); a template
cannot make the operator create anything but the one Job, in the member namespace of the job's own, with
the operator's own identifying labels; pod-security tricks are refused by default."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import pytest

from chaos_support import (
    OPERATOR_NAMESPACE, _member_ready, check_invariants, condition, job, wait_all_terminal, wait_until,
)


@pytest.fixture(scope="module")
def private_member(control_plane: Any, operator: Any) -> Any:
    """MemberCluster ``eu-gb-private`` (region eu-gb-private, on the eu-gb cluster), open to one namespace."""
    owner = f"owner-{uuid.uuid4().hex[:6]}"
    control_plane.kubectl("hub", "create", "namespace", owner)
    member = {"apiVersion": "carbonshift.io/v1alpha1", "kind": "MemberCluster", "metadata": {"name": "eu-gb-private"},
              "spec": {"region": "eu-gb-private", "zone": "GB", "allowedNamespaces": [owner],
                       "kubeconfigSecretRef": {"name": "member-eu-gb", "namespace": OPERATOR_NAMESPACE},
                       "carbonSignal": {"provider": "trace", "trace": {"path": "GB",
                                                                        "anchor": "2022-12-29T14:00:00Z"}},
                       # The admin maps the owner's jobs to a member namespace of another name.
                       "namespaceMapping": {owner: "private-jobs"}, "createNamespaces": True}}
    control_plane.kubectl("hub", "apply", "-f", "-", input=json.dumps(member))
    wait_until(lambda: _member_ready(control_plane, "eu-gb-private"), timeout=60, what="eu-gb-private Ready",
               on_fail=operator.log_tail)
    yield owner
    # The jobs first, and their Jobs in eu-gb gone (the operator's orphan collection removes them
    # through this MemberCluster), then the MemberCluster: the other way round they would stay.
    control_plane.kubectl("hub", "delete", "namespace", owner, "--wait=true", "--timeout=90s", check=False)

    def member_jobs_left() -> str:
        return control_plane.kubectl("eu-gb", "get", "jobs", "-n", "private-jobs", "-o", "name",
                                     "-l", f"carbonshift.io/job-namespace={owner}", check=False).stdout.strip()

    wait_until(lambda: not member_jobs_left(), timeout=60, what="eu-gb-private's Jobs removed", on_fail=operator.log_tail)
    control_plane.kubectl("hub", "delete", "membercluster", "eu-gb-private", check=False)


@pytest.mark.chaos_smoke
def test_namespace_cannot_use_a_member_that_does_not_allow_it(private_member, operator, hub, make_namespace,
                                                              ledger) -> None:
    owner = private_member
    intruder = make_namespace("hub", "intruder")
    hub.create(intruder, job("sneak", regions=["eu-gb-private"], max_delay="10m"))
    anywhere_job = job("sneak-any", max_delay="1m")
    del anywhere_job["spec"]["placement"]["allowedRegions"]  # every region open to it
    hub.create(intruder, anywhere_job)
    hub.create(owner, job("mine", regions=["eu-gb-private"], max_delay="10m"))
    ledger["cross-namespace MemberCluster use attempted"] += 2
    refused = wait_until(lambda: "not valid" in ((s := hub.status(intruder, "sneak")).get("message") or "") and s,
                         what="refusal", on_fail=operator.log_tail)
    assert condition(refused, "Valid")["status"] == "False"
    assert "eu-gb-private" in refused["message"]
    assert owner not in json.dumps(refused)  # does not tell who may use it
    finished = wait_all_terminal(hub, owner, ["mine"], timeout=120, process=operator)
    assert finished["mine"]["status"]["memberJob"]["cluster"] == "eu-gb-private"
    assert finished["mine"]["status"]["memberJob"]["namespace"] == "private-jobs"
    anywhere = wait_all_terminal(hub, intruder, ["sneak-any"], timeout=120, process=operator)
    assert anywhere["sneak-any"]["status"]["memberJob"]["cluster"] in ("eu-de", "eu-gb")
    time.sleep(2)
    uid = hub.caj(intruder, "sneak")["metadata"]["uid"]
    assert hub.copies_by_uid()[uid] == 0


def test_status_and_events_stay_in_the_jobs_namespace(private_member, operator, hub, make_namespace,
                                                      control_plane) -> None:
    secret_word = f"confidential-{uuid.uuid4().hex[:6]}"
    a, b = make_namespace("hub", "team-a"), make_namespace("hub", "team-b")
    hub.apply(a, {"apiVersion": "carbonshift.io/v1alpha1", "kind": "CarbonPolicy", "metadata": {"name": "default"},
                  "spec": {"allowedRegions": ["eu-de"], "maxDelay": "2h"}})
    hub.apply(a, {"apiVersion": "carbonshift.io/v1alpha1", "kind": "CarbonPolicy", "metadata": {"name": secret_word},
                  "spec": {"allowedRegions": ["eu-gb"]}})
    hub.create(a, job(secret_word, regions=["eu-gb"], policy=secret_word, max_delay="10m"))
    # team-b names team-a's policy: it must not be found (policies are per namespace).
    hub.create(b, job("borrow", regions=["eu-gb"], policy=secret_word, max_delay="10m"))
    hub.create(b, job("plain", regions=["eu-gb"], max_delay="10m"))
    borrowed = wait_until(lambda: "not valid" in ((s := hub.status(b, "borrow")).get("message") or "") and s,
                          what="foreign policy refused", on_fail=operator.log_tail)
    assert f"CarbonPolicy {b}/{secret_word}" in borrowed["message"]
    wait_all_terminal(hub, a, [secret_word], timeout=120, process=operator)
    wait_all_terminal(hub, b, ["plain"], timeout=120, process=operator)
    text_b = json.dumps(hub.jobs(b)) + json.dumps(hub.events(b))
    assert a not in text_b, "team-b's objects mention team-a"
    # Every Event about a CarbonAwareJob lives in that job's namespace.
    events = json.loads(control_plane.kubectl("hub", "get", "events", "-A", "-o", "json").stdout)["items"]
    for event in events:
        involved = event.get("involvedObject") or {}
        if involved.get("kind") == "CarbonAwareJob":
            assert event["metadata"]["namespace"] == involved.get("namespace"), event


def _trick(name: str, pod_patch: dict[str, Any] | None = None, meta: dict[str, Any] | None = None,
           job_spec: dict[str, Any] | None = None) -> dict[str, Any]:
    body = job(name, regions=["eu-gb"], max_delay="1m", pod_seconds=1)
    template = body["spec"]["template"]
    pod = template["spec"]["template"]["spec"]
    pod.update(pod_patch or {})
    template["spec"].update(job_spec or {})
    if meta is not None:
        template["metadata"] = meta
    return body


PRIVILEGED_TRICKS = {
    "privileged": {"containers": [{"name": "m", "image": "busybox", "securityContext": {"privileged": True}}]},
    "escalation": {"containers": [{"name": "m", "image": "busybox",
                                   "securityContext": {"allowPrivilegeEscalation": True}}]},
    "sys-admin": {"containers": [{"name": "m", "image": "busybox",
                                  "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]},
    "init-privileged": {"initContainers": [{"name": "i", "image": "busybox", "securityContext": {"privileged": True}}]},
    "host-path": {"volumes": [{"name": "root", "hostPath": {"path": "/"}}]},
    "host-network": {"hostNetwork": True},
    "host-pid": {"hostPID": True},
    "host-ipc": {"hostIPC": True},
}


@pytest.mark.chaos_smoke
def test_template_tricks_create_only_the_one_job_where_it_belongs(operator, hub, make_namespace, control_plane,
                                                                  ledger) -> None:
    ns = make_namespace("hub", "tricks")
    for name, patch in PRIVILEGED_TRICKS.items():
        hub.create(ns, _trick(name, patch))
    victim_uid = str(uuid.uuid4())
    sneaky_meta = {"name": "evil", "namespace": "kube-system", "generateName": "evil-",
                   "ownerReferences": [{"apiVersion": "v1", "kind": "Namespace", "name": "kube-system",
                                        "uid": victim_uid}],
                   "finalizers": ["example.com/never"],
                   "labels": {"carbonshift.io/job-uid": victim_uid, "app.kubernetes.io/managed-by": "someone-else",
                              "carbonshift.io/member-cluster": "eu-de", "team": "ok"},
                   "annotations": {"carbonshift.io/source": "kube-system/evil", "note": "kept"}}
    hub.create(ns, _trick("sneaky-metadata", meta=sneaky_meta))
    # A Job field that would move it elsewhere does not exist; try the closest: a pod that
    # names a namespace and a service account of its own.
    hub.create(ns, _trick("sneaky-pod", {"serviceAccountName": "default"}, job_spec={"namespace": "kube-system"}))
    ledger["template tricks (privileged, hostPath, host namespaces, metadata spoofing)"] += len(PRIVILEGED_TRICKS) + 2
    for name in PRIVILEGED_TRICKS:
        status = wait_until(lambda n=name: "not valid" in ((s := hub.status(ns, n)).get("message") or "") and s,
                            what=f"{name} refused", on_fail=operator.log_tail)
        assert "does not meet Pod Security level restricted" in status["message"], status
    finished = wait_all_terminal(hub, ns, ["sneaky-metadata", "sneaky-pod"], timeout=120, process=operator)
    check_invariants(hub, finished)
    uids = {i["metadata"]["name"]: i["metadata"]["uid"] for i in hub.jobs(ns)}
    for name in PRIVILEGED_TRICKS:
        assert hub.copies_by_uid()[uids[name]] == 0, name
    member_job = next(j for j in hub.all_member_jobs()["eu-gb"]
                      if j["metadata"]["labels"]["carbonshift.io/job-uid"] == uids["sneaky-metadata"])
    meta = member_job["metadata"]
    assert meta["namespace"] == ns and not meta["name"].startswith("evil")
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "carbonshift"
    assert meta["labels"]["carbonshift.io/member-cluster"] == "eu-gb"
    assert meta["labels"]["team"] == "ok" and meta["annotations"]["note"] == "kept"
    assert meta["annotations"]["carbonshift.io/source"] == f"{ns}/sneaky-metadata"
    # Only the operator's own finalizer, until the end is recorded on the hub.
    assert not meta.get("ownerReferences") and set(meta.get("finalizers") or []) <= {"carbonshift.io/record-completion"}
    assert hub.copies_by_uid()[victim_uid] == 0
    # Nothing appeared in kube-system, and the job's member namespace holds only Jobs and their Pods.
    for cluster in ("eu-de", "eu-gb"):
        system = json.loads(control_plane.kubectl(cluster, "-n", "kube-system", "get", "jobs,pods", "-o", "json").stdout)
        assert not system["items"], [i["metadata"]["name"] for i in system["items"]]
        out = control_plane.kubectl(cluster, "-n", ns, "get", "secrets,services,deployments,daemonsets,"
                                    "statefulsets,replicasets,cronjobs,roles,rolebindings,persistentvolumeclaims,"
                                    "networkpolicies", "-o", "name").stdout.split()
        assert not out, f"{cluster}/{ns} holds {out}"
