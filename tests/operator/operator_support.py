"""Helpers for the operator tests. The operator as users run it: `carbonshift run` as a process against the real local control
plane, with the three regional clusters registered as MemberClusters replaying real traces.

The operator runs on an explicit accelerated clock (the same code paths, 400 simulated seconds
per real second) so that hours of carbon-intensity change happen within a test. Each member's
trace is anchored at a real 2022 moment chosen for its shape (see ANCHORS).
"""

from __future__ import annotations

import copy
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "hack"))

from members import REGIONS, kubectl, member_manifest, register_members  # noqa: F401 - the tests import them from here

CLOCK_SPEED = 400.0
# Real moments of the bundled 2022 traces whose following hours have the shape a test needs:
# eu-de 2022-09-30 19:00 UTC: 458 g/kWh falling steadily to 280 g/kWh four hours later;
# eu-gb 2022-12-29 14:00 UTC: 56 g/kWh, the lowest of 2022 in Great Britain, rising after;
# us-ca 2022-03-09 20:00 UTC: California, an ordinary evening (133 g/kWh).
ANCHORS = {"eu-de": "2022-09-30T19:00:00Z", "eu-gb": "2022-12-29T14:00:00Z", "us-ca": "2022-03-09T20:00:00Z"}
# eu-de 2022-10-01 21:00 UTC: 268, 250, 236, 247, 245, 240, 242 g/kWh: the two cheapest hours are apart, so
# a 2-hour interruptible job is cheapest split in two (about 1 % cheaper than any 2 hours in a row).
LAB_ANCHOR = "2022-10-01T21:00:00Z"


# A pod that meets the Pod Security level "restricted" (the operator's default).
RESTRICTED_POD: dict[str, Any] = {
    "restartPolicy": "Never",
    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{"name": "main", "image": "busybox", "command": ["true"],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class OperatorProcess:
    """A running `carbonshift run`, restartable (kill -9 included) with the same arguments."""

    argv: list[str]
    log_path: Path
    metrics_port: int
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = open(self.log_path, "ab")  # handed to the child
        self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(timeout=30)

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return resp.read().decode()

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def _metrics_up(process: OperatorProcess) -> bool:
    if process.proc is not None and process.proc.poll() is not None:
        raise AssertionError(f"operator exited with {process.proc.returncode}:\n{process.log_tail()}")
    try:
        return "carbonshift_jobs" in process.metrics()
    except OSError:
        return False



def _member_ready(control_plane: Any, name: str) -> bool:
    out = control_plane.kubectl("hub", "get", "membercluster", name, "-o", "json", check=False)
    return out.returncode == 0 and bool((json.loads(out.stdout).get("status") or {}).get("ready"))



def wait_until(predicate: Callable[[], Any], timeout: float = 60.0, interval: float = 0.3, what: str = "condition",
               on_fail: Callable[[], str] | None = None) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    detail = f"\n--- operator log ---\n{on_fail()}" if on_fail else ""
    raise AssertionError(f"{what} not reached within {timeout} s{detail}")



@dataclass

@dataclass
class Hub:
    """Helpers to create and read CarbonAwareJobs on the hub and Jobs in members."""

    control_plane: Any

    def apply(self, namespace: str, manifest: dict[str, Any] | str) -> None:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        self.control_plane.kubectl("hub", "-n", namespace, "apply", "-f", "-", input=text)

    def caj(self, namespace: str, name: str) -> dict[str, Any]:
        out = self.control_plane.kubectl("hub", "-n", namespace, "get", "caj", name, "-o", "json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        return self.caj(namespace, name).get("status") or {}

    def events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        out = self.control_plane.kubectl("hub", "-n", namespace, "get", "events", "-o", "json",
                                         f"--field-selector=involvedObject.name={name}")
        return json.loads(out.stdout)["items"]

    def member_jobs(self, cluster: str, uid: str) -> list[dict[str, Any]]:
        """The member's Jobs for a CarbonAwareJob, in every namespace."""
        out = self.control_plane.kubectl(cluster, "get", "jobs", "-A", "-o", "json",
                                         f"-l=carbonshift.io/job-uid={uid}", check=False)
        return json.loads(out.stdout)["items"] if out.returncode == 0 else []

    def copies(self, uid: str) -> dict[str, int]:
        return {c: len(self.member_jobs(c, uid)) for c in ("eu-de", "eu-gb", "us-ca")}

    def watch_copies(self, uid: str, seconds: float, *, seen: set[str] | None = None,
                     every: Callable[[], Any] | None = None) -> set[str]:
        """Polls every member for ``seconds``: the UIDs of all Jobs ever made for the job (creations
        over time, not only what is left at the end); ``every`` runs at each poll (e.g. an assertion)."""
        seen = set() if seen is None else seen
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for cluster in ("eu-de", "eu-gb", "us-ca"):
                seen.update(j["metadata"]["uid"] for j in self.member_jobs(cluster, uid))
            if every is not None:
                every()
            time.sleep(0.5)
        return seen


def caj_manifest(name: str, *, regions: list[str], max_delay: str | None = "3h", deadline: str | None = None,
                 duration: str = "1h", preferred: str | None = None, interruptible: bool = False,
                 relocation: bool = False, policy: str | None = None, watts: float = 500,
                 pod_seconds: float | None = None, job_spec: dict[str, Any] | None = None) -> dict[str, Any]:
    """A CarbonAwareJob; ``pod_seconds`` is how long (real time) its pod runs on kwok."""
    pod_meta: dict[str, Any] = {}
    if pod_seconds is not None:
        pod_meta = {"annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": f"{pod_seconds}s"}}
    spec: dict[str, Any] = {
        "estimatedDuration": duration,
        "power": {"watts": watts},
        "placement": {"allowedRegions": regions, **({"preferredRegion": preferred} if preferred else {}),
                      "allowRelocation": relocation},
        "interruptible": interruptible,
        "template": {"spec": {"backoffLimit": 0, **(job_spec or {}), "template": {
            "metadata": pod_meta,
            "spec": copy.deepcopy(RESTRICTED_POD),
        }}},
    }
    if deadline:
        spec["deadline"] = deadline
    elif max_delay:
        spec["maxDelay"] = max_delay
    if policy:
        spec["policy"] = policy
    return {"apiVersion": "carbonshift.io/v1alpha1", "kind": "CarbonAwareJob", "metadata": {"name": name}, "spec": spec}
