"""(Named to run after test_operator.py: the shared operator's accelerated clock is fresh there.)

Adoption across an upgrade, on the real control plane. Versions before commit 769b937 made member
Jobs without the ``carbonshift.io/hub`` label and without the record-completion finalizer. The
upgraded operator adopts such a copy only when the hub's status records it by its member UID
(only the operator writes status; only the member's API server gives UIDs); a look-alike standing
at the same name, with the same labels, is never adopted: the job is reported lost and the
look-alike is left exactly as it is.
"""

from __future__ import annotations

import copy
import json
import signal
from typing import Any

import pytest

from operator_support import RESTRICTED_POD, caj_manifest, wait_until

pytestmark = pytest.mark.cluster
HUB_LABEL = "carbonshift.io/hub"
FINALIZER = "carbonshift.io/record-completion"


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def as_before_the_hub_label(control_plane: Any, cluster: str, job: dict[str, Any]) -> None:
    """Makes a member Job look as an old version made it: no hub label, no finalizer."""
    ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
    control_plane.kubectl(cluster, "-n", ns, "label", "job", name, f"{HUB_LABEL}-")
    control_plane.kubectl(cluster, "-n", ns, "patch", "job", name, "--type=json",
                          "-p", json.dumps([{"op": "remove", "path": "/metadata/finalizers"}]))


def look_alike_of(job: dict[str, Any]) -> dict[str, Any]:
    """What anyone who may create Jobs in that namespace can make: the same name, labels and
    annotations (no hub label, as an old copy), a pod that runs for a long time."""
    meta = job["metadata"]
    labels = {k: v for k, v in meta["labels"].items() if k != HUB_LABEL}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"], "labels": labels,
                         "annotations": {k: v for k, v in (meta.get("annotations") or {}).items()
                                         if k.startswith("carbonshift.io/")}},
            "spec": {"backoffLimit": 0, "template": {
                "metadata": {"annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": "300s"}},
                "spec": copy.deepcopy(RESTRICTED_POD)}}}


def test_an_upgrade_adopts_the_recorded_old_copy_and_never_a_look_alike(operator, hub, make_namespace,
                                                                         control_plane) -> None:
    ns = make_namespace("hub", "upgrade")
    hub.apply(ns, caj_manifest("kept", regions=["eu-gb"], max_delay="1m", pod_seconds=20))
    hub.apply(ns, caj_manifest("replaced", regions=["eu-gb"], max_delay="1m", pod_seconds=300))
    for name in ("kept", "replaced"):
        wait_until(lambda n=name: hub.status(ns, n).get("phase") == "Running", timeout=60, what=f"{name} Running",
                   on_fail=operator.log_tail)
    kept_uid, replaced_uid = (hub.caj(ns, n)["metadata"]["uid"] for n in ("kept", "replaced"))
    [kept] = hub.member_jobs("eu-gb", kept_uid)
    [replaced] = hub.member_jobs("eu-gb", replaced_uid)
    assert hub.status(ns, "kept")["memberJob"]["uid"] == kept["metadata"]["uid"]
    operator.kill(signal.SIGKILL)  # the old version goes
    try:
        as_before_the_hub_label(control_plane, "eu-gb", kept)
        # The recorded copy of "replaced" is gone (old copies had no finalizer: a TTL removed
        # them), and a Job of the same name and labels now stands there, made by someone else.
        as_before_the_hub_label(control_plane, "eu-gb", replaced)
        control_plane.kubectl("eu-gb", "-n", replaced["metadata"]["namespace"], "delete", "job",
                              replaced["metadata"]["name"], "--cascade=background", "--wait=true")
        control_plane.kubectl("eu-gb", "apply", "-f", "-", input=json.dumps(look_alike_of(replaced)))
    finally:
        operator.start()  # the upgraded version
    look_alike_uid = hub.member_jobs("eu-gb", replaced_uid)[0]["metadata"]["uid"]
    assert look_alike_uid != replaced["metadata"]["uid"]

    # The recorded old copy is adopted (label and finalizer added), followed to its end, never made again.
    def adopted() -> bool:
        jobs = hub.member_jobs("eu-gb", kept_uid)
        return len(jobs) == 1 and jobs[0]["metadata"]["labels"].get(HUB_LABEL) is not None \
            and FINALIZER in (jobs[0]["metadata"].get("finalizers") or [])
    wait_until(adopted, timeout=60, what="the old copy adopted", on_fail=operator.log_tail)
    made = hub.watch_copies(kept_uid, 1, seen={kept["metadata"]["uid"]})
    wait_until(lambda: hub.status(ns, "kept").get("phase") == "Succeeded", timeout=90, what="kept Succeeded",
               on_fail=operator.log_tail)
    made = hub.watch_copies(kept_uid, 3, seen=made)
    assert made == {kept["metadata"]["uid"]}, made
    assert hub.status(ns, "kept")["memberJob"]["uid"] == kept["metadata"]["uid"]

    # The look-alike is not the recorded copy: the job is reported lost, the look-alike untouched.
    wait_until(lambda: hub.status(ns, "replaced").get("phase") == "Failed", timeout=60, what="replaced Failed",
               on_fail=operator.log_tail)
    assert condition(hub.status(ns, "replaced"), "Failed")["reason"] == "MemberJobLost"
    [left] = hub.member_jobs("eu-gb", replaced_uid)
    assert left["metadata"]["uid"] == look_alike_uid
    assert HUB_LABEL not in left["metadata"]["labels"] and not left["metadata"].get("finalizers")
    assert [e["reason"] for e in hub.events(ns, "replaced")].count("Dispatched") == 1  # not run again
    control_plane.kubectl("eu-gb", "-n", left["metadata"]["namespace"], "delete", "job", left["metadata"]["name"],
                          "--wait=false")


def test_a_copy_left_in_another_cluster_than_the_new_decision_is_adopted(operator, hub, make_namespace,
                                                                        control_plane) -> None:
    """Killed after creating the member Job in eu-de and before writing status; restarted, the
    plan prefers eu-gb (56 g/kWh against eu-de's 458): the copy in eu-de is the run."""
    from carbonshift.controller.manifests import build_member_job

    ns = make_namespace("hub", "moved")
    hub_id = json.loads(control_plane.kubectl("hub", "get", "namespace", "kube-system", "-o", "json").stdout)[
        "metadata"]["uid"]
    operator.kill(signal.SIGKILL)
    try:
        hub.apply(ns, caj_manifest("moved", regions=["eu-de", "eu-gb"], max_delay="3h", pod_seconds=5))
        body = hub.caj(ns, "moved")
        assert not body.get("status")
        control_plane.kubectl("eu-de", "create", "namespace", ns, check=False)
        made = build_member_job(body, namespace=ns, member="eu-de", region="eu-de", hub_id=hub_id)
        control_plane.kubectl("eu-de", "apply", "-f", "-", input=json.dumps(made))
    finally:
        operator.start()
    uid = body["metadata"]["uid"]
    [left] = hub.member_jobs("eu-de", uid)
    wait_until(lambda: hub.status(ns, "moved").get("phase") == "Succeeded", timeout=90, what="moved Succeeded",
               on_fail=operator.log_tail)
    status = hub.status(ns, "moved")
    assert status["memberJob"]["cluster"] == "eu-de" and status["decision"]["cluster"] == "eu-de"
    assert status["memberJob"]["uid"] == left["metadata"]["uid"]
    assert hub.copies(uid) == {"eu-de": 1, "eu-gb": 0, "us-ca": 0}
    assert [e["reason"] for e in hub.events(ns, "moved")].count("Dispatched") == 1
    # The same job without a leftover copy goes to eu-gb: the decision was moved to the copy.
    hub.apply(ns, caj_manifest("control", regions=["eu-de", "eu-gb"], max_delay="3h", pod_seconds=5))
    wait_until(lambda: (hub.status(ns, "control").get("decision") or {}).get("cluster"), timeout=60,
               what="control decided", on_fail=operator.log_tail)
    assert hub.status(ns, "control")["decision"]["cluster"] == "eu-gb"
