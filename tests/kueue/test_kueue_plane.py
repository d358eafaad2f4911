"""carbonshift driving the real Kueue v0.17.0: the green-window check and the MultiKueue dispatcher.

Hub = MultiKueue manager with carbonshift's dispatcher; eu-de, eu-gb, us-ca = workers. The
operator's clock runs CLOCK_SPEED times faster, so "hours later" is seconds here.
"""

from __future__ import annotations

import json
import signal
import time

import pytest
from kueue_support import KueueEnv, start_operator, wait_until

pytestmark = pytest.mark.cluster


def _remote_once(env: KueueEnv, ns: str, name: str) -> dict[str, str]:
    copies = env.remote_jobs(ns, name)
    return copies if len(copies) == 1 else {}


def test_job_with_allowance_is_held_then_admitted_in_the_greener_window(kueue_env: KueueEnv) -> None:
    env = kueue_env
    env.fresh_operator()
    ns = env.namespace()
    # eu-de only: 458 g/kWh now, falling over the next hours; 6 h allowed.
    # Its pod runs 30 s, so the remote copy is still there to be seen on a loaded machine.
    env.job(ns, "held", {"carbonshift.io/max-delay": "6h", "carbonshift.io/regions": "eu-de",
                         "carbonshift.io/estimated-duration": "1h"}, pod_seconds=30)
    held = wait_until(lambda: "held until" in env.check(ns, "held").get("message", "") and env.check(ns, "held"),
                      timeout=60, what="green-window check Pending with a plan", on_fail=env.operator.log_tail)
    assert held["state"] == "Pending"
    assert "DelayedToGreenerWindow" in held["message"] and "gCO2eq/kWh" in held["message"]
    assert env.remote_jobs(ns, "held") == {}  # nothing dispatched while held
    wl = env.workload_of(ns, "held")
    assert not any(c["type"] == "Admitted" and c["status"] == "True" for c in wl["status"].get("conditions", []))
    # The planned start comes (hours on the operator's clock): Ready, then admitted on eu-de.
    ready = wait_until(lambda: env.check(ns, "held").get("state") == "Ready" and env.check(ns, "held"),
                       timeout=90, what="check Ready at the planned start", on_fail=env.operator.log_tail)
    assert "start now" in ready["message"]
    copies = wait_until(lambda: _remote_once(env, ns, "held"), timeout=90, what="one remote copy",
                        on_fail=env.operator.log_tail)
    assert list(copies) == ["eu-de"]
    reasons = {e["reason"] for e in env.events(ns, wl["metadata"]["name"])}
    assert {"CarbonHeld", "CarbonReady", "CarbonDispatched"} <= reasons


def test_job_allowed_in_two_regions_runs_in_the_greener_worker(kueue_env: KueueEnv) -> None:
    env = kueue_env
    ns = env.namespace()
    env.job(ns, "two", {"carbonshift.io/regions": "eu-de,eu-gb"})  # eu-gb: 56 g/kWh, eu-de: 458
    copies = wait_until(lambda: _remote_once(env, ns, "two"), timeout=60, what="a remote copy",
                        on_fail=env.operator.log_tail)
    assert list(copies) == ["eu-gb"]
    wait_until(lambda: (env.workload_of(ns, "two") or {}).get("status", {}).get("clusterName") == "eu-gb",
               timeout=30, what="clusterName eu-gb")
    # Accounting: once it finished, its plan's grams are counted for eu-gb (once: annotation accounted).
    wait_until(lambda: 'carbonshift_emitted_grams_total{region="eu-gb"}' in env.operator.metrics(), timeout=60,
               what="emissions counted for eu-gb", on_fail=env.operator.log_tail)
    # ... and its baseline, so that the dashboard's baseline - emitted is the net saving.
    assert 'carbonshift_baseline_grams_total{region="eu-gb"}' in env.operator.metrics()
    notes = env.workload_of(ns, "two")["metadata"]["annotations"]
    assert notes["carbonshift.io/accounted"] == "true" and notes["carbonshift.io/region"] == "eu-gb"


def test_job_without_allowance_is_not_delayed(kueue_env: KueueEnv) -> None:
    env = kueue_env
    ns = env.namespace(checks=("green-window",))  # admitted on the hub itself
    env.job(ns, "plain")
    ready = wait_until(lambda: env.check(ns, "plain").get("state") == "Ready" and env.check(ns, "plain"),
                       timeout=30, what="check Ready at once", on_fail=env.operator.log_tail)
    assert "not delayed" in ready["message"] and "NoAllowance" in ready["message"]
    wait_until(lambda: env.kubectl("hub", "-n", ns, "get", "job", "plain", "-o",
                                   "jsonpath={.spec.suspend}").stdout == "false",
               timeout=30, what="the Job unsuspended by Kueue")


def test_pod_group_is_held_then_admitted(kueue_env: KueueEnv) -> None:
    env = kueue_env
    env.fresh_operator()
    ns = env.namespace(checks=("green-window",))  # localRegion eu-de: held for its greener window
    env.pod_group(ns, "grp", 2, {"carbonshift.io/max-delay": "6h", "carbonshift.io/estimated-duration": "1h"})
    held = wait_until(lambda: "held until" in env.check(ns, "grp-0").get("message", "") and env.check(ns, "grp-0"),
                      timeout=60, what="pod group held", on_fail=env.operator.log_tail)
    assert held["state"] == "Pending"
    gates = env.kubectl("hub", "-n", ns, "get", "pod", "grp-0", "-o", "jsonpath={.spec.schedulingGates}").stdout
    assert "kueue.x-k8s.io/admission" in gates
    wait_until(lambda: env.check(ns, "grp-0").get("state") == "Ready", timeout=90, what="pod group Ready",
               on_fail=env.operator.log_tail)
    wait_until(lambda: "admission" not in env.kubectl("hub", "-n", ns, "get", "pod", "grp-1", "-o",
                                                      "jsonpath={.spec.schedulingGates}").stdout,
               timeout=30, what="pods released by Kueue")


def test_full_cluster_queue_keeps_the_check_pending(kueue_env: KueueEnv) -> None:
    env = kueue_env
    ns = env.namespace(cpu="1")
    # The first Job takes the whole quota (1 CPU) and keeps it while it runs on a worker for a minute.
    env.job(ns, "first", {"carbonshift.io/regions": "eu-de,eu-gb"}, pod_seconds=60)
    wait_until(lambda: env.check(ns, "first").get("state") == "Ready", timeout=60,
               what="first Job decided", on_fail=env.operator.log_tail)
    env.job(ns, "second", {"carbonshift.io/regions": "eu-de,eu-gb"})  # no allowance, but no quota either
    end = time.monotonic() + 8
    while time.monotonic() < end:
        wl = env.workload_of(ns, "second") or {}
        conditions = {c["type"]: c["status"] for c in (wl.get("status") or {}).get("conditions", [])}
        assert conditions.get("QuotaReserved") != "True"
        assert env.check(ns, "second").get("state") in (None, "Pending")
        assert not env.check(ns, "second").get("message", "").startswith("carbonshift")
        assert env.remote_jobs(ns, "second") == {}
        time.sleep(0.5)


def test_operator_killed_mid_dispatch_leaves_exactly_one_remote_copy(kueue_env: KueueEnv, tmp_path) -> None:
    env = kueue_env
    ns = env.namespace()
    names = [f"burst-{i}" for i in range(8)]
    for name in names:
        env.job(ns, name, {"carbonshift.io/regions": "eu-de,eu-gb,us-ca"}, pod_seconds=30)
    # Kill it as soon as the first nomination is out, mid-burst.
    wait_until(lambda: any(env.remote_jobs(ns, n) for n in names), timeout=60, interval=0.1,
               what="a first dispatch", on_fail=env.operator.log_tail)
    env.operator.kill(signal.SIGKILL)
    env.operator = start_operator(env.control_plane, tmp_path)
    seen: dict[str, set[str]] = {n: set() for n in names}  # every copy ever seen, as "worker:uid"

    def all_once() -> bool:
        now = {name: env.remote_jobs(ns, name) for name in names}
        for name, copies in now.items():
            seen[name].update(f"{w}:{uid}" for w, uid in copies.items())
        return all(len(copies) == 1 for copies in now.values())

    wait_until(all_once, timeout=90, what="every Job with one remote copy", on_fail=env.operator.log_tail)
    for name in names:
        assert len(seen[name]) == 1, f"{name} had copies {seen[name]}"


def test_interruptible_work_moves_when_another_region_becomes_clearly_greener(kueue_env: KueueEnv) -> None:
    env = kueue_env
    env.fresh_operator()
    ns = env.namespace()
    env.job(ns, "mover", {"carbonshift.io/regions": "eu-gb,us-ca", "carbonshift.io/interruptible": "true"},
            pod_seconds=300)
    wait_until(lambda: list(env.remote_jobs(ns, "mover")) == ["eu-gb"], timeout=60, what="running in eu-gb (56 g/kWh)",
               on_fail=env.operator.log_tail)
    gb = json.loads(env.kubectl("hub", "get", "membercluster", "eu-gb", "-o", "json").stdout)
    anchor = gb["spec"]["carbonSignal"]["trace"]["anchor"]
    try:
        # Great Britain's grid turns dirty (a November 2022 evening, about 390 g/kWh); California: 133.
        env.kubectl("hub", "patch", "membercluster", "eu-gb", "--type=merge", "-p",
                    json.dumps({"spec": {"carbonSignal": {"trace": {"anchor": "2022-11-28T20:00:00Z"}}}}))
        wait_until(lambda: list(env.remote_jobs(ns, "mover")) == ["us-ca"], timeout=90,
                   what="moved to us-ca, the eu-gb copy gone", on_fail=env.operator.log_tail)
    finally:
        env.kubectl("hub", "patch", "membercluster", "eu-gb", "--type=merge", "-p",
                    json.dumps({"spec": {"carbonSignal": {"trace": {"anchor": anchor}}}}))
    wl = env.workload_of(ns, "mover")
    assert {"CarbonRelocating", "CarbonDispatched"} <= {e["reason"] for e in env.events(ns, wl["metadata"]["name"])}
