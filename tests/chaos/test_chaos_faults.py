"""Faults while a steady stream of CarbonAwareJobs is planned and dispatched: kill -9 of the
operator at random moments, a member API server killed and restarted, etcd paused, clock jumps,
member Jobs deleted by hand, CarbonAwareJobs edited or deleted mid-dispatch.

After each: every job reaches a correct phase, exactly one member Job per job (counted by the
``carbonshift.io/job-uid`` label across the member clusters), nothing lost, status true.
"""

from __future__ import annotations

import json
import os
import random
import signal
import threading
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from chaos_support import (
    FULL, MEMBERS, Hub, _start_with_env, alive_and_serving, check_invariants, condition, job, origin_argv,
    wait_all_terminal, wait_until,
)



class Stream:
    """Submits jobs in the background, one every ``every`` seconds, until stopped."""

    def __init__(self, hub: Hub, namespace: str, prefix: str, every: float = 0.4, **job_args: Any) -> None:
        self.hub, self.namespace, self.prefix, self.every, self.job_args = hub, namespace, prefix, every, job_args
        self.names: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.is_set():
            name = f"{self.prefix}-{i}"
            try:
                self.hub.create(self.namespace, job(name, **self.job_args))
                self.names.append(name)
            except Exception as exc:  # the hub may be paused on purpose; the submitter retries
                self.errors.append(f"{name}: {type(exc).__name__}")
                time.sleep(0.5)
                continue
            i += 1
            self._stop.wait(self.every)

    def __enter__(self) -> Stream:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join(timeout=60)


def phases(hub: Hub, namespace: str) -> Counter[str]:
    return Counter((i.get("status") or {}).get("phase") or "New" for i in hub.jobs(namespace))


@pytest.mark.parametrize("kills", [
    pytest.param(5, marks=pytest.mark.chaos_smoke, id="5-kills"),
    pytest.param(50, id="50-kills"),
])
def test_kill9_during_planning_and_dispatch(kills, operator, hub, make_namespace, ledger) -> None:
    if kills > 5 and not FULL:
        pytest.skip("full suite only")
    ns = make_namespace("hub", "kill")
    rng = random.Random(int(os.environ.get("CARBONSHIFT_CHAOS_SEED", "8")) + kills)
    in_flight_at_kill = 0
    with Stream(hub, ns, "job", every=0.25) as stream:
        time.sleep(1.5)
        for _ in range(kills):
            time.sleep(rng.uniform(0.2, 3.5))
            counts = phases(hub, ns)
            # Every phase before the end still needs the operator (a Running job's result is mirrored by it).
            if counts["New"] + counts["Pending"] + counts["Waiting"] + counts["Dispatched"] + counts["Running"]:
                in_flight_at_kill += 1
            operator.kill(signal.SIGKILL)
            ledger["operator kill -9 (steady job stream)"] += 1
            operator.start()
    ledger["  of which with jobs being planned/dispatched"] += in_flight_at_kill
    finished = wait_all_terminal(hub, ns, stream.names, timeout=300, process=operator)
    ledger["jobs submitted under kill -9"] += len(stream.names)
    check_invariants(hub, finished, ledger)
    assert in_flight_at_kill >= kills * 0.8
    wait_until(lambda: alive_and_serving(operator), what="operator serving after the kills")


@pytest.mark.chaos_smoke
def test_member_job_deleted_by_hand_is_recorded_and_never_rerun(operator, hub, make_namespace, control_plane,
                                                                ledger) -> None:
    ns = make_namespace("hub", "byhand")
    hub.create(ns, job("victim", regions=["eu-gb"], max_delay="1m", pod_seconds=30))
    status = wait_until(lambda: (s := hub.status(ns, "victim")).get("phase") == "Running" and s, what="Running",
                        on_fail=operator.log_tail)
    ref = status["memberJob"]
    control_plane.kubectl(ref["cluster"], "-n", ref["namespace"], "delete", "job", ref["name"], "--wait=true")
    ledger["member Job deleted by hand"] += 1
    finished = wait_all_terminal(hub, ns, ["victim"], timeout=120, process=operator)
    assert finished["victim"]["status"]["phase"] == "Failed"
    assert condition(finished["victim"]["status"], "Failed")["reason"] == "MemberJobDeleted"
    time.sleep(5)  # a re-run would show within a few cycles
    assert hub.copies_by_uid()[finished["victim"]["metadata"]["uid"]] == 0


def test_jobs_deleted_and_edited_mid_dispatch(operator, hub, make_namespace, control_plane, ledger) -> None:
    ns = make_namespace("hub", "edit")
    names = [f"j-{i}" for i in range(16)]
    for name in names:
        hub.create(ns, job(name, max_delay="40m", pod_seconds=4))
    rng = random.Random(3)
    deleted, edited = set(rng.sample(names, 5)), set()
    uids = {i["metadata"]["name"]: i["metadata"]["uid"] for i in hub.jobs(ns)}
    time.sleep(1.0)
    for name in sorted(deleted):
        control_plane.kubectl("hub", "-n", ns, "delete", "caj", name, "--wait=false")
        ledger["CarbonAwareJob deleted mid-dispatch"] += 1
        time.sleep(rng.uniform(0.1, 0.6))
    for name in sorted(set(names) - deleted)[:6]:
        # Narrow the regions (waiting: must be honoured; already dispatched: the run is kept).
        control_plane.kubectl("hub", "-n", ns, "patch", "caj", name, "--type=merge",
                              "-p", '{"spec":{"placement":{"allowedRegions":["eu-gb"]}}}')
        edited.add(name)
        ledger["CarbonAwareJob edited mid-dispatch"] += 1
        time.sleep(rng.uniform(0.1, 0.6))
    survivors = [n for n in names if n not in deleted]
    finished = wait_all_terminal(hub, ns, survivors, timeout=180, process=operator)
    wait_until(lambda: not any(hub.copies_by_uid()[uids[n]] for n in deleted), timeout=60,
               what="deleted jobs' member Jobs removed", on_fail=operator.log_tail)
    check_invariants(hub, finished, ledger, deleted_uids={uids[n] for n in deleted})
    for name in edited:
        item = finished[name]
        status = item["status"]
        first_dispatch = next((e for e in hub.events(ns, name) if e["reason"] == "Dispatched"), None)
        assert first_dispatch is not None
        # Either the edit was honoured (runs in eu-gb), or it came after dispatch and says so.
        if status["memberJob"]["cluster"] != "eu-gb":
            assert status.get("observedGeneration") != item["metadata"]["generation"] or \
                "eu-gb" in str(status.get("history")), status


def test_member_apiserver_killed_and_restarted(operator, hub, make_namespace, control_plane, ledger) -> None:
    plane = control_plane.plane
    ns = make_namespace("hub", "apisrv")
    with Stream(hub, ns, "job", every=0.5, max_delay="30m", pod_seconds=3) as stream:
        time.sleep(3)
        os.killpg(plane._pids()["eu-gb-apiserver"], signal.SIGKILL)
        ledger["member API server kill -9 + restart"] += 1
        try:
            wait_until(lambda: hub.cp.kubectl("hub", "get", "mc", "eu-gb", "-o", "jsonpath={.status.ready}")
                       .stdout == "false", timeout=60, what="eu-gb NotReady", on_fail=operator.log_tail)
            time.sleep(4)
        finally:
            plane.up()
    finished = wait_all_terminal(hub, ns, stream.names, timeout=240, process=operator)
    ledger["jobs submitted around a member API server outage"] += len(stream.names)
    check_invariants(hub, finished, ledger)


KILLED_AFTER_CREATE = Path(__file__).resolve().parent / "killed_after_create.py"


def member_copies(control_plane, cluster: str, uid: str) -> list[dict[str, Any]]:
    out = control_plane.kubectl(cluster, "get", "jobs", "-A", "-o", "json", "-l", f"carbonshift.io/job-uid={uid}")
    return json.loads(out.stdout)["items"]


@pytest.mark.chaos_smoke
def test_killed_between_create_and_status_write_while_that_member_is_down(operator, hub, make_namespace,
                                                                         control_plane, ledger) -> None:
    """The double fault: the operator is killed -9 right after a member answered a create, before
    the status write that records the copy, and restarts while that member's API server is down.
    The job is not created in the other member meanwhile, and its status says why; once the
    member is back, its copy is the one run."""
    plane = control_plane.plane
    ns = make_namespace("hub", "twice")
    original = list(operator.argv)  # [python, -m, carbonshift, run, ...]
    operator.kill(signal.SIGKILL)
    operator.argv = [original[0], str(KILLED_AFTER_CREATE), *original[3:]]
    _start_with_env(operator, {"CARBONSHIFT_TEST_KILL_AFTER_CREATE": f"{ns}/once"})
    down = None
    try:
        uid = hub.create(ns, job("once", max_delay="1m", pod_seconds=3))["metadata"]["uid"]
        assert operator.proc.wait(timeout=120) == -signal.SIGKILL, operator.log_tail()
        ledger["operator kill -9 between a member create and its status write"] += 1
        made = {c: member_copies(control_plane, c, uid) for c in MEMBERS}
        (down,) = [c for c, copies in made.items() if copies]
        (other,) = [c for c in MEMBERS if c != down]
        first_copy = made[down][0]["metadata"]["uid"]
        assert "memberJob" not in hub.status(ns, "once")
        os.killpg(plane._pids()[f"{down}-apiserver"], signal.SIGKILL)
        ledger["  and that member's API server kill -9 before the restart"] += 1
        operator.argv = original
        operator.start()
        # Restarted with nothing in memory and that member unlisted: never a copy in the other one.
        explained_at = None
        end = time.monotonic() + 90
        while time.monotonic() < end:
            assert member_copies(control_plane, other, uid) == [], (
                f"created a second time, in {other}, while {down} was down:\n{operator.log_tail()}")
            status = hub.status(ns, "once")
            dispatched = condition(status, "Dispatched")
            if explained_at is None and dispatched.get("reason") == "DispatchUnconfirmed":
                explained_at = time.monotonic()
            if explained_at is not None and time.monotonic() - explained_at > 6:  # a dozen cycles
                break
            time.sleep(0.5)
        assert explained_at is not None, (status, operator.log_tail())
        assert status["phase"] == "Waiting" and "memberJob" not in status
        assert status["decision"]["cluster"] == down
        assert down in status["message"] and "not created elsewhere" in status["message"], status["message"]
        warnings = [e for e in hub.events(ns, "once") if e["reason"] == "DispatchUnconfirmed"]
        assert len(warnings) == 1 and warnings[0]["type"] == "Warning"
    finally:
        plane.up()
        if operator.argv != original or operator.proc is None or operator.proc.poll() is not None:
            operator.kill(signal.SIGKILL)
            operator.argv = original
            operator.start()
    # The member is back: its copy is adopted and run, exactly once.
    finished = wait_all_terminal(hub, ns, ["once"], timeout=180, process=operator)
    check_invariants(hub, finished, ledger)
    assert finished["once"]["status"]["memberJob"]["uid"] == first_copy
    assert finished["once"]["status"]["memberJob"]["cluster"] == down
    assert [e["reason"] for e in hub.events(ns, "once")].count("Dispatched") == 1


def test_etcd_paused(operator, hub, make_namespace, control_plane, ledger) -> None:
    pid = control_plane.plane._pids()["etcd"]
    ns = make_namespace("hub", "etcd")
    with Stream(hub, ns, "job", every=0.5, max_delay="30m", pod_seconds=2) as stream:
        time.sleep(2.5)
        os.kill(pid, signal.SIGSTOP)
        ledger["etcd SIGSTOP 8 s / SIGCONT"] += 1
        try:
            time.sleep(8)
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(2.5)
    finished = wait_all_terminal(hub, ns, stream.names, timeout=240, process=operator)
    ledger["jobs submitted around an etcd pause"] += len(stream.names)
    check_invariants(hub, finished, ledger)
    assert alive_and_serving(operator)


def test_etcd_killed_and_restarted(operator, hub, make_namespace, control_plane, ledger) -> None:
    plane = control_plane.plane
    ns = make_namespace("hub", "etcdkill")
    with Stream(hub, ns, "job", every=0.5, max_delay="30m", pod_seconds=2) as stream:
        time.sleep(2.5)
        os.killpg(plane._pids()["etcd"], signal.SIGKILL)
        ledger["etcd kill -9 + restart"] += 1
        time.sleep(3)
        plane.up()
        time.sleep(2)
    # Not the operator's business, but seen: after etcd loses its clients this way, a member's
    # simulated kubelet (kwok) or scheduler may miss one pod update and leave its Job active
    # forever (the operator then truthfully reports Running). A real kubelet resyncs; here the
    # member clusters' kwok and schedulers are restarted once etcd is back, as a resync.
    time.sleep(3)
    pids = plane._pids()
    for name, pid in pids.items():
        if name.endswith(("-kwok", "-scheduler")) and not name.startswith("hub"):
            os.killpg(pid, signal.SIGTERM)
    wait_until(lambda: not any(plane._alive(p) for n, p in pids.items() if n.endswith(("-kwok", "-scheduler"))
                               and not n.startswith("hub")), timeout=30, what="kwok and schedulers stopped")
    plane.up()
    finished = wait_all_terminal(hub, ns, stream.names, timeout=240, process=operator)
    check_invariants(hub, finished, ledger)
    assert alive_and_serving(operator)


@pytest.mark.parametrize("hours", [6, -6, 48])
def test_clock_jump(hours, operator, hub, make_namespace, ledger) -> None:
    """Restart with the clock hours ahead (or behind): waiting decisions turn overdue (or far
    off); jobs still run once, and overdue deadlines are reported, not silently missed."""
    ns = make_namespace("hub", "clock")
    names = [f"j-{i}" for i in range(8)]
    for name in names[:4]:
        hub.create(ns, job(name, max_delay="2h", duration="30m", pod_seconds=2))
    for name in names[4:]:
        hub.create(ns, job(name, max_delay="20m", duration="10m", pod_seconds=2, interruptible=True))
    time.sleep(1.5)
    jumped = (datetime.now(timezone.utc) + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")
    original = list(operator.argv)
    operator.kill(signal.SIGKILL)
    operator.argv = origin_argv(original, jumped)
    operator.start()
    ledger[f"clock jump {hours:+d} h (restart with --clock-origin)"] += 1
    try:
        finished = wait_all_terminal(hub, ns, names, timeout=240, process=operator)
        check_invariants(hub, finished, ledger)
        if hours > 0:
            for item in finished.values():
                status = item["status"]
                decision = status["decision"]
                late = any(r["code"] in ("RunNowDeadlineNear", "DeadlineUnmeetable") for r in decision["reasons"])
                # Jobs whose deadline passed in the jump are run at once and flagged.
                if late:
                    assert condition(status, "DeadlineAtRisk").get("status") == "True", status
    finally:
        operator.kill(signal.SIGKILL)
        operator.argv = original
        operator.start()
        wait_until(lambda: alive_and_serving(operator), what="operator back on the normal clock")


def test_no_job_is_lost_in_the_whole_module(hub, control_plane, operator) -> None:
    """Every member Job on the chaos clusters belongs to an existing CarbonAwareJob (no orphans)."""
    def orphans() -> list[str]:
        uids = {i["metadata"]["uid"] for i in
                __import__("json").loads(control_plane.kubectl("hub", "get", "caj", "-A", "-o", "json").stdout)["items"]}
        return [f"{c}/{j['metadata']['name']}" for c, js in hub.all_member_jobs().items() for j in js
                if j["metadata"]["labels"]["carbonshift.io/job-uid"] not in uids]
    wait_until(lambda: not orphans(), timeout=60, what="no orphan member Jobs", on_fail=lambda: str(orphans()))
