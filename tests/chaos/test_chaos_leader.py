"""Two operator replicas WITH leader election (the lease in carbonshift-system): only one acts,
no duplicates; kill -9 the leader and the other takes over."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

import pytest

from chaos_support import (
    FULL, OPERATOR_NAMESPACE, OperatorProcess, _member_ready, alive_and_serving, check_invariants, job,
    start_operator, wait_all_terminal, wait_until,
)

LEASE_SECONDS = "4"


def _serving(process: OperatorProcess) -> bool:
    try:
        return alive_and_serving(process)
    except (OSError, AssertionError):
        return False


def _lease(cp: Any) -> dict[str, Any]:
    out = cp.kubectl("hub", "-n", OPERATOR_NAMESPACE, "get", "lease", "carbonshift-leader", "-o", "json", check=False)
    return json.loads(out.stdout).get("spec", {}) if out.returncode == 0 else {}


@pytest.mark.parametrize("takeovers", [
    pytest.param(1, marks=pytest.mark.chaos_smoke, id="1-takeover"),
    pytest.param(6, id="6-takeovers"),
])
def test_two_replicas_one_leader_and_takeover(takeovers, control_plane, members, hub, make_namespace,
                                              tmp_path, ledger) -> None:
    if takeovers > 1 and not FULL:
        pytest.skip("full suite only")
    cp = control_plane
    env = {"CARBONSHIFT_LEASE_SECONDS": LEASE_SECONDS}
    replicas = {name: start_operator(cp, tmp_path, leader=True, identity=name, wait=False, env=env)
                for name in ("replica-a", "replica-b")}
    try:
        leader = wait_until(lambda: next((n for n, p in replicas.items() if _serving(p)), None), timeout=90,
                            what="a leader", on_fail=lambda: "\n".join(p.log_tail(20) for p in replicas.values()))
        wait_until(lambda: all(_member_ready(cp, m) for m in members), timeout=60, what="members Ready")
        ns = make_namespace("hub", "leader")
        names: list[str] = []
        counter = 0
        for round_ in range(takeovers):
            for _ in range(6):
                name = f"j-{counter}"
                counter += 1
                hub.create(ns, job(name, max_delay="30m", pod_seconds=2))
                names.append(name)
                time.sleep(0.3)
            # Both serve /metrics; only the lease holder acts (carbonshift_leader 1), the other waits.
            time.sleep(1.0)
            serving = [n for n, p in replicas.items() if _serving(p)]
            assert serving == [leader], f"round {round_}: serving {serving}, leader {leader}"
            assert _lease(cp).get("holderIdentity") == leader
            follower = next(n for n in replicas if n != leader)
            wait_until(lambda: "another replica leads" in replicas[follower].log_path.read_text(), timeout=60,
                       what=f"{follower} waits as a follower", on_fail=replicas[follower].log_tail)
            replicas[leader].kill(signal.SIGKILL)
            ledger["leader kill -9 with two replicas (takeover)"] += 1
            killed_at = time.monotonic()
            wait_until(lambda: _serving(replicas[follower]), timeout=60, what=f"{follower} takes over",
                       on_fail=replicas[follower].log_tail)
            ledger["  takeover seconds (max)"] = max(ledger["  takeover seconds (max)"],
                                                     round(time.monotonic() - killed_at))
            wait_until(lambda: _lease(cp).get("holderIdentity") == follower, timeout=30, what="lease moved")
            # The killed one comes back as a follower.
            replicas[leader].start()
            leader = follower
        for _ in range(4):
            name = f"j-{counter}"
            counter += 1
            hub.create(ns, job(name, max_delay="30m", pod_seconds=2))
            names.append(name)
        finished = wait_all_terminal(hub, ns, names, timeout=240, process=replicas[leader])
        ledger["jobs run across leader takeovers"] += len(names)
        check_invariants(hub, finished, ledger)
        assert [n for n, p in replicas.items() if _serving(p)] == [leader]
    finally:
        for process in replicas.values():
            process.kill(signal.SIGTERM)
