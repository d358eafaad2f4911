"""Two replicas of `carbonshift run` with leader election, as the chart's HA scenario runs them:
both serve /metrics, /healthz and /readyz (the follower too), `carbonshift_leader` says which one
acts, and SIGTERM of the leader gives the Lease up, so the follower takes over well before the
lease would have expired.

Each test uses its own Lease name, so it never competes with another operator on the hub.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from operator_support import OperatorProcess, free_port, wait_until

pytestmark = pytest.mark.cluster
NAMESPACE = "carbonshift-system"
LEASE_SECONDS = 15


def get(process: OperatorProcess, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{process.metrics_port}{path}", timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def leader_gauge(process: OperatorProcess) -> float | None:
    try:
        status, text = get(process, "/metrics")
    except OSError:
        return None
    match = re.search(r"^carbonshift_leader (\S+)$", text, re.M)
    return float(match[1]) if status == 200 and match else None


@pytest.fixture
def replicas(control_plane: Any, tmp_path: Path) -> Iterator[tuple[dict[str, OperatorProcess], str]]:
    control_plane.kubectl("hub", "create", "namespace", NAMESPACE, check=False)
    lease = f"replicas-{uuid.uuid4().hex[:6]}"
    processes = {}
    for name in ("replica-a", "replica-b"):
        # CARBONSHIFT_<FIELD> variables override settings (settings.load_settings); `env` sets them
        # for the child only.
        argv = ["env", f"CARBONSHIFT_LEASE_NAME={lease}", f"CARBONSHIFT_LEASE_SECONDS={LEASE_SECONDS}",
                sys.executable, "-m", "carbonshift", "run", f"--kubeconfig={control_plane.kubeconfig('hub')}",
                f"--namespace={NAMESPACE}", "--cycle-seconds=1", f"--identity={name}"]
        port = free_port()
        processes[name] = OperatorProcess([*argv, f"--metrics-port={port}"], tmp_path / f"{name}.log", port)
        processes[name].start()
    try:
        yield processes, lease
    finally:
        for process in processes.values():
            process.kill(signal.SIGTERM)
        control_plane.kubectl("hub", "delete", "lease", lease, "-n", NAMESPACE, check=False)


def holder(control_plane: Any, lease: str) -> str | None:
    out = control_plane.kubectl("hub", "get", "lease", lease, "-n", NAMESPACE, "-o", "json", check=False)
    return json.loads(out.stdout).get("spec", {}).get("holderIdentity") if out.returncode == 0 else None


def test_every_replica_serves_probes_and_metrics_and_one_leads(control_plane: Any, replicas: Any) -> None:
    processes, lease = replicas
    logs = lambda: "\n".join(p.log_tail(20) for p in processes.values())  # noqa: E731
    gauges = wait_until(lambda: (g := {n: leader_gauge(p) for n, p in processes.items()})
                        and sorted(v for v in g.values() if v is not None) == [0.0, 1.0] and g,
                        timeout=90, what="one leader (gauge 1) and one follower (gauge 0)", on_fail=logs)
    leader = next(n for n, v in gauges.items() if v == 1.0)
    follower = next(n for n in processes if n != leader)
    assert holder(control_plane, lease) == leader
    for name, process in processes.items():
        role = "leader" if name == leader else "follower"
        assert get(process, "/healthz")[0] == 200, name
        _, text = wait_until(lambda p=process: (r := get(p, "/readyz"))[0] == 200 and r, timeout=30,
                                  what=f"{name} ready", on_fail=logs)
        assert text.strip() == f"ready ({role})"
        metrics = get(process, "/metrics")[1]
        # The follower exports the same families (empty ones included), so dashboards and alerts see
        # every replica; only the leader has job and member series.
        for family in ("carbonshift_jobs", "carbonshift_dispatch_errors_total", "carbonshift_deadline_misses_total"):
            assert f"# TYPE {family.removesuffix('_total')}" in metrics, (name, family)
    assert leader_gauge(processes[follower]) == 0.0


def test_sigterm_of_the_leader_hands_over_faster_than_the_lease(control_plane: Any, replicas: Any) -> None:
    processes, lease = replicas
    logs = lambda: "\n".join(p.log_tail(30) for p in processes.values())  # noqa: E731
    gauges = wait_until(lambda: (g := {n: leader_gauge(p) for n, p in processes.items()})
                        and sorted(v for v in g.values() if v is not None) == [0.0, 1.0] and g,
                        timeout=90, what="one leader and one follower", on_fail=logs)
    leader = next(n for n, v in gauges.items() if v == 1.0)
    follower = next(n for n in processes if n != leader)
    stopped_at = time.monotonic()
    processes[leader].kill(signal.SIGTERM)
    assert processes[leader].proc is not None and processes[leader].proc.returncode == 0, logs()
    assert "released the lease" in processes[leader].log_path.read_text()
    wait_until(lambda: leader_gauge(processes[follower]) == 1.0, timeout=LEASE_SECONDS * 2,
               what=f"{follower} leads", on_fail=logs)
    handover = time.monotonic() - stopped_at
    assert holder(control_plane, lease) == follower
    # Without the release the follower would wait for the lease to expire (LEASE_SECONDS after the
    # last renewal); with it, it takes over at its next poll (every 2 s).
    assert handover < LEASE_SECONDS, f"takeover took {handover:.1f} s, not less than the {LEASE_SECONDS} s lease"
    print(f"takeover after SIGTERM: {handover:.1f} s (lease {LEASE_SECONDS} s)")
