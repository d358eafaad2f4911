"""(Named to run after test_operator.py: the shared operator's accelerated clock is fresh there.)

Every CarbonAwareJob runs exactly once in the members (issue #12.2, #12.6, #12.8): a member
Job that ran or finished is never created again, whatever happens to it there (TTL, deletion by
hand, a lost finalizer, an edit of the template), and a job deleted while the hub's watch was
broken does not go on running. Each test counts the member Jobs made over a window, not only
what is left at the end."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import urllib.request

import localcluster
import pytest

from operator_support import caj_manifest, wait_until

pytestmark = pytest.mark.cluster
FINALIZER = "carbonshift.io/record-completion"


def condition(status: dict, type_: str) -> dict:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def phase_is(hub, ns: str, name: str, *phases: str):
    return lambda: (s := hub.status(ns, name)).get("phase") in phases and s


def kubectl_wait(control_plane, ns: str, name: str, condition_type: str) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", f"--kubeconfig={control_plane.kubeconfig('hub')}", "-n", ns, "wait",
                           f"--for=condition={condition_type}", f"caj/{name}", "--timeout=90s"],
                          capture_output=True, text=True, timeout=120)


def test_a_job_with_ttl_zero_runs_once_is_recorded_and_kubectl_wait_returns(operator, hub, make_namespace,
                                                                             control_plane) -> None:
    ns = make_namespace("hub", "ttl")
    # The ex-#12.6 attack: TTL 0 made the member Job vanish before the hub saw it end; it was re-run forever.
    hub.apply(ns, caj_manifest("once", regions=["eu-gb"], max_delay="1m", pod_seconds=2,
                               job_spec={"ttlSecondsAfterFinished": 0}))
    waited = kubectl_wait(control_plane, ns, "once", "Complete")
    assert waited.returncode == 0, (waited.stderr, operator.log_tail())
    uid = hub.caj(ns, "once")["metadata"]["uid"]
    status = hub.status(ns, "once")
    assert status["phase"] == "Succeeded" and condition(status, "Complete")["status"] == "True"
    assert condition(status, "Failed")["status"] == "False"
    # For 15 s more: still Succeeded, no second Job ever made, and the finished Job left to its TTL.
    made = hub.watch_copies(uid, 15, seen={status["memberJob"]["uid"]},
                            every=lambda: assert_phase(hub, ns, "once", "Succeeded"))
    assert made == {status["memberJob"]["uid"]}, made
    assert hub.copies(uid) == {"eu-de": 0, "eu-gb": 0, "us-ca": 0}  # TTL removed it once released
    assert [e["reason"] for e in hub.events(ns, "once")].count("Dispatched") == 1


def assert_phase(hub, ns: str, name: str, phase: str) -> None:
    got = hub.status(ns, name).get("phase")
    assert got == phase, f"{ns}/{name} went from {phase} to {got}"


def test_member_jobs_carry_the_hub_label_and_the_record_finalizer(operator, hub, make_namespace,
                                                                   control_plane) -> None:
    ns = make_namespace("hub", "label")
    hub.apply(ns, caj_manifest("marked", regions=["eu-de"], max_delay="1m", pod_seconds=30))
    status = wait_until(lambda: (s := hub.status(ns, "marked")).get("memberJob") and s, what="dispatch",
                        on_fail=operator.log_tail)
    uid = hub.caj(ns, "marked")["metadata"]["uid"]
    [member_job] = hub.member_jobs("eu-de", uid)
    hub_id = json.loads(control_plane.kubectl("hub", "get", "namespace", "kube-system", "-o", "json").stdout)
    assert member_job["metadata"]["labels"]["carbonshift.io/hub"] == hub_id["metadata"]["uid"]
    assert FINALIZER in member_job["metadata"]["finalizers"]
    assert member_job["metadata"]["namespace"] == ns == status["memberJob"]["namespace"]
    # Deleting the CarbonAwareJob removes the copy completely (finalizer too: nothing stuck Terminating).
    control_plane.kubectl("hub", "-n", ns, "delete", "caj", "marked", "--timeout=60s")
    wait_until(lambda: sum(hub.copies(uid).values()) == 0, timeout=60, what="member Job gone",
               on_fail=operator.log_tail)


def test_a_running_job_deleted_by_hand_in_the_member_is_recorded_failed_and_not_rerun(operator, hub, make_namespace,
                                                                                     control_plane) -> None:
    ns = make_namespace("hub", "byhand")
    hub.apply(ns, caj_manifest("victim", regions=["eu-gb"], max_delay="1m", pod_seconds=120))
    status = wait_until(phase_is(hub, ns, "victim", "Running"), timeout=60, what="Running", on_fail=operator.log_tail)
    ref = status["memberJob"]
    uid = hub.caj(ns, "victim")["metadata"]["uid"]
    control_plane.kubectl(ref["cluster"], "-n", ref["namespace"], "delete", "job", ref["name"], "--wait=false")
    waited = kubectl_wait(control_plane, ns, "victim", "Failed")
    assert waited.returncode == 0, (waited.stderr, operator.log_tail())
    status = hub.status(ns, "victim")
    assert status["phase"] == "Failed" and condition(status, "Failed")["reason"] == "MemberJobDeleted"
    assert any(e["reason"] == "MemberJobDeleted" and e["type"] == "Warning" for e in hub.events(ns, "victim"))
    made = hub.watch_copies(uid, 12, seen={ref["uid"]}, every=lambda: assert_phase(hub, ns, "victim", "Failed"))
    assert made == {ref["uid"]}, f"the job was run again: {made}"
    assert hub.copies(uid) == {"eu-de": 0, "eu-gb": 0, "us-ca": 0}  # the deletion went through once recorded


def test_a_copy_that_vanishes_without_its_finalizer_is_reported_lost_never_rerun(operator, hub, make_namespace,
                                                                                 control_plane) -> None:
    ns = make_namespace("hub", "lost")
    hub.apply(ns, caj_manifest("gone", regions=["eu-de"], max_delay="1m", pod_seconds=120))
    status = wait_until(phase_is(hub, ns, "gone", "Running"), timeout=60, what="Running", on_fail=operator.log_tail)
    ref = status["memberJob"]
    uid = hub.caj(ns, "gone")["metadata"]["uid"]
    # Someone with rights in the member strips the finalizer and deletes the Job, pods and all.
    control_plane.kubectl(ref["cluster"], "-n", ref["namespace"], "patch", "job", ref["name"], "--type=merge",
                          "-p", '{"metadata":{"finalizers":null}}')
    control_plane.kubectl(ref["cluster"], "-n", ref["namespace"], "delete", "job", ref["name"], "--wait=true")
    lost = wait_until(phase_is(hub, ns, "gone", "Failed"), timeout=60, what="Failed", on_fail=operator.log_tail)
    # Without its finalizer the Job is gone at once: the operator never sees it being deleted, only missing.
    assert condition(lost, "Failed")["reason"] == "MemberJobLost", lost["conditions"]
    assert any(e["type"] == "Warning" and e["reason"] == "MemberJobLost" for e in hub.events(ns, "gone"))
    made = hub.watch_copies(uid, 12, seen={ref["uid"]}, every=lambda: assert_phase(hub, ns, "gone", "Failed"))
    assert made == {ref["uid"]}, f"the job was run again: {made}"


def test_an_edit_after_dispatch_never_runs_the_edited_template(operator, hub, make_namespace, control_plane) -> None:
    ns = make_namespace("hub", "edit")
    hub.apply(ns, caj_manifest("edited", regions=["eu-gb"], max_delay="1m", pod_seconds=6,
                               job_spec={"ttlSecondsAfterFinished": 0}))
    status = wait_until(lambda: (s := hub.status(ns, "edited")).get("memberJob") and s, what="dispatch",
                        on_fail=operator.log_tail)
    uid = hub.caj(ns, "edited")["metadata"]["uid"]
    # The ex-#12.2 attack: a privileged, hostPID pod after dispatch (the hub may refuse the edit itself).
    edit = {"spec": {"template": {"spec": {"template": {"spec": {"hostPID": True, "containers": [
        {"name": "main", "image": "busybox", "securityContext": {"privileged": True}}]}}}}}}
    control_plane.kubectl("hub", "-n", ns, "patch", "caj", "edited", "--type=merge", "-p", json.dumps(edit),
                          check=False)
    wait_until(phase_is(hub, ns, "edited", "Succeeded", "Failed"), timeout=90, what="the end",
               on_fail=operator.log_tail)
    made = hub.watch_copies(uid, 12, seen={status["memberJob"]["uid"]})
    assert made == {status["memberJob"]["uid"]}, f"the edited template ran: {made}"


def compact_etcd() -> None:
    """Compacts the plane's etcd to its current revision (through etcd's JSON gateway)."""
    url = f"http://127.0.0.1:{localcluster.ETCD_CLIENT_PORT}/v3/kv"

    def post(path: str, body: dict) -> dict:
        request = urllib.request.Request(f"{url}/{path}", data=json.dumps(body).encode(), method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())

    revision = int(post("range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"])
    post("compaction", {"revision": revision, "physical": True})


def test_a_job_deleted_while_the_hub_watch_is_broken_does_not_keep_running(operator, hub, make_namespace,
                                                                           control_plane) -> None:
    """#12.8: the operator is frozen, the hub API server restarted, the job deleted: the operator's
    watch resumes from a version the server no longer has and re-lists, with no DELETED event."""
    ns = make_namespace("hub", "relist")
    hub.apply(ns, caj_manifest("ghost", regions=["eu-de"], max_delay="1m", pod_seconds=300))
    wait_until(phase_is(hub, ns, "ghost", "Running"), timeout=60, what="Running", on_fail=operator.log_tail)
    uid = hub.caj(ns, "ghost")["metadata"]["uid"]
    plane = control_plane.plane
    assert operator.proc is not None
    os.kill(operator.proc.pid, signal.SIGSTOP)
    try:
        # The restart first (events sent before it could still sit unread in the frozen process's
        # sockets), then the deletion, then the history the operator's watch would resume from is compacted.
        os.killpg(plane._pids()["hub-apiserver"], signal.SIGKILL)
        time.sleep(1)
        plane.up()
        control_plane.kubectl("hub", "-n", ns, "delete", "caj", "ghost", "--wait=false")
        compact_etcd()
    finally:
        os.kill(operator.proc.pid, signal.SIGCONT)
    wait_until(lambda: sum(hub.copies(uid).values()) == 0, timeout=90, what="the deleted job's copy removed",
               on_fail=operator.log_tail)
