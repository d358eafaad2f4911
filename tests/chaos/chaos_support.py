"""Helpers for the chaos tests: an isolated control plane, the operator as a process, a
carbon-provider stand-in we can break on purpose, and the invariants checked after each fault.

Isolation: ``hack/localcluster.py`` reads ``CARBONSHIFT_PORT_OFFSET`` into module constants at
import time, and the root conftest imports it (offset 0) before this file is read. So a private
copy of the module is loaded here, under another name, with the offset set only while it
executes: the chaos control plane listens on its own ports and keeps its state in its own folder,
and nothing the other test sessions use (ports, env of their subprocesses) is touched.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "hack"))
sys.path.insert(0, str(REPO_ROOT / "tests" / "operator"))
sys.path.insert(0, str(REPO_ROOT / "tests"))

from cluster_access import ControlPlane
from operator_support import (  # reused, not copied
    OperatorProcess, _member_ready, _metrics_up, caj_manifest, free_port, wait_until,
)
from members import OPERATOR_NAMESPACE, member_manifest, register_members

PORT_OFFSET = "200"
FULL = os.environ.get("CARBONSHIFT_CHAOS") == "1"  # the full suite, not only the smoke subset
STATE_DIR = Path(os.environ.get("CARBONSHIFT_CHAOS_STATE_DIR", REPO_ROOT / ".state" / "chaos"))
CLUSTERS = ("hub", "eu-de", "eu-gb")
MEMBERS = ("eu-de", "eu-gb")
# Where the chaos tests' own MemberClusters put jobs of a hub namespace they map (test_chaos_security).
JOB_NAMESPACE = "carbonshift-jobs"
CLOCK_SPEED = 400.0
# Same real moments as the operator tests (see operator_support.ANCHORS).
ANCHORS = {"eu-de": "2022-09-30T19:00:00Z", "eu-gb": "2022-12-29T14:00:00Z"}
TRACES = {"eu-de": ("DE", "DE"), "eu-gb": ("GB", "GB")}
GROUP_PATH = "carbonshift.io/v1alpha1"


def _exec_localcluster(offset: str) -> ModuleType:
    saved = os.environ.get("CARBONSHIFT_PORT_OFFSET")
    os.environ["CARBONSHIFT_PORT_OFFSET"] = offset
    try:
        spec = importlib.util.spec_from_file_location("chaos_localcluster", REPO_ROOT / "hack" / "localcluster.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules["chaos_localcluster"] = module  # dataclasses look their module up while it executes
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            os.environ.pop("CARBONSHIFT_PORT_OFFSET", None)
        else:
            os.environ["CARBONSHIFT_PORT_OFFSET"] = saved
    assert module.PORT_OFFSET == int(offset)
    return module


def _ports_free(module: ModuleType) -> bool:
    ports = [module.ETCD_CLIENT_PORT, module.ETCD_PEER_PORT] + [s.port for s in module.cluster_specs(CLUSTERS)]
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def load_private_localcluster() -> ModuleType:
    """hack/localcluster.py as module ``chaos_localcluster``, its ports moved by PORT_OFFSET
    (or the next free offset if another process holds one of them). A chaos plane left running
    (CARBONSHIFT_KEEP_CLUSTER=1) keeps the offset it was started with."""
    name = "chaos_localcluster"
    if name in sys.modules:
        return sys.modules[name]
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    saved = STATE_DIR / "port-offset"
    if saved.exists() and (STATE_DIR / "cluster" / "pids.json").exists():
        module = _exec_localcluster(saved.read_text().strip())
    else:
        for offset in (int(PORT_OFFSET), *range(int(PORT_OFFSET) + 20, int(PORT_OFFSET) + 400, 20)):
            module = _exec_localcluster(str(offset))
            if _ports_free(module):
                saved.write_text(str(offset))
                break
            del sys.modules[name]
        else:
            raise RuntimeError("no free port offset for the chaos control plane")
    sys.modules[name] = module
    return module


# The chaos plane is reached like any other (tests/cluster_access.py); only its ports differ.
ChaosPlane = ControlPlane


# ----- the operator --------------------------------------------------------------------------
def start_operator(cp: ChaosPlane, log_dir: Path, *, leader: bool = False, speed: float | None = CLOCK_SPEED,
                   origin: str | None = None, identity: str | None = None, wait: bool = True,
                   env: dict[str, str] | None = None) -> OperatorProcess:
    port = free_port()
    log_path = log_dir / f"operator-{identity or uuid.uuid4().hex[:6]}.log"
    argv = [sys.executable, "-m", "carbonshift", "run", f"--kubeconfig={cp.kubeconfig('hub')}",
            f"--metrics-port={port}", "--cycle-seconds=0.5", f"--namespace={OPERATOR_NAMESPACE}"]
    if not leader:
        argv.append("--no-leader-election")
    if identity:
        argv.append(f"--identity={identity}")
    if speed is not None and speed != 1.0:
        argv.append(f"--clock-speed={speed}")
    if origin:
        argv.append(f"--clock-origin={origin}")
    process = OperatorProcess(argv, log_path, port)
    if env:
        _start_with_env(process, env)
    else:
        process.start()
    if wait:
        wait_until(lambda: _metrics_up(process), timeout=90, what="operator /metrics", on_fail=process.log_tail)
    return process


def _start_with_env(process: OperatorProcess, env: dict[str, str]) -> None:
    log = open(process.log_path, "ab")  # handed to the child
    process.proc = subprocess.Popen(process.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                                    env={**os.environ, **env})


def restart(process: OperatorProcess, argv: list[str] | None = None) -> None:
    """kill -9, then start again (optionally with other arguments)."""
    process.kill(signal.SIGKILL)
    if argv is not None:
        process.argv = argv
    process.start()


def alive_and_serving(process: OperatorProcess) -> bool:
    """Alive and acting: every replica serves /metrics, only the one acting reports carbonshift_leader 1."""
    return (process.proc is not None and process.proc.poll() is None and _metrics_up(process)
            and "\ncarbonshift_leader 1.0\n" in process.metrics())


def origin_argv(argv: list[str], origin: str | None) -> list[str]:
    kept = [a for a in argv if not a.startswith("--clock-origin=")]
    return kept + ([f"--clock-origin={origin}"] if origin else [])


# ----- hub objects ----------------------------------------------------------------------------
class Hub:
    def __init__(self, cp: ChaosPlane) -> None:
        self.cp = cp

    def create(self, namespace: str, body: dict[str, Any], plural: str = "carbonawarejobs") -> dict[str, Any]:
        return self.cp.custom().create_namespaced_custom_object("carbonshift.io", "v1alpha1", namespace, plural, body)

    def apply(self, namespace: str | None, manifest: dict[str, Any]) -> None:
        args = ["apply", "-f", "-"] if namespace is None else ["-n", namespace, "apply", "-f", "-"]
        self.cp.kubectl("hub", *args, input=json.dumps(manifest))

    def jobs(self, namespace: str) -> list[dict[str, Any]]:
        out = self.cp.kubectl("hub", "-n", namespace, "get", "caj", "-o", "json")
        return json.loads(out.stdout)["items"]

    def caj(self, namespace: str, name: str) -> dict[str, Any]:
        out = self.cp.kubectl("hub", "-n", namespace, "get", "caj", name, "-o", "json", check=False)
        return json.loads(out.stdout) if out.returncode == 0 else {}

    def status(self, namespace: str, name: str) -> dict[str, Any]:
        return self.caj(namespace, name).get("status") or {}

    def events(self, namespace: str, name: str | None = None) -> list[dict[str, Any]]:
        args = ["-n", namespace, "get", "events", "-o", "json"]
        if name:
            args.append(f"--field-selector=involvedObject.name={name}")
        return json.loads(self.cp.kubectl("hub", *args).stdout)["items"]

    def all_member_jobs(self) -> dict[str, list[dict[str, Any]]]:
        """Every Job carrying the carbonshift.io/job-uid label, per member cluster (all namespaces)."""
        found: dict[str, list[dict[str, Any]]] = {}
        for cluster in MEMBERS:
            out = self.cp.kubectl(cluster, "get", "jobs", "-A", "-o", "json", "-l", "carbonshift.io/job-uid")
            found[cluster] = json.loads(out.stdout)["items"]
        return found

    def copies_by_uid(self) -> Counter[str]:
        counts: Counter[str] = Counter()
        for jobs in self.all_member_jobs().values():
            for job in jobs:
                counts[job["metadata"]["labels"]["carbonshift.io/job-uid"]] += 1
        return counts


def parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def condition(status: dict[str, Any], type_: str) -> dict[str, Any]:
    return next((c for c in status.get("conditions") or [] if c["type"] == type_), {})


def job(name: str, *, regions: list[str] | None = None, max_delay: str | None = "20m", duration: str = "10m",
        pod_seconds: float = 1, **extra: Any) -> dict[str, Any]:
    return caj_manifest(name, regions=regions or list(MEMBERS), max_delay=max_delay, duration=duration,
                        pod_seconds=pod_seconds, **extra)


def wait_all_terminal(hub: Hub, namespace: str, names: list[str], timeout: float = 240,
                      process: OperatorProcess | None = None) -> dict[str, dict[str, Any]]:
    """Waits until every named job is Succeeded or Failed; returns their objects."""
    pending = set(names)
    result: dict[str, dict[str, Any]] = {}
    end = time.monotonic() + timeout
    while pending and time.monotonic() < end:
        for item in hub.jobs(namespace):
            name = item["metadata"]["name"]
            if name in pending and (item.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                pending.discard(name)
                result[name] = item
        if pending:
            time.sleep(1.0)
    if pending:
        phases = {i["metadata"]["name"]: (i.get("status") or {}).get("phase") for i in hub.jobs(namespace)}
        tail = process.log_tail(60) if process else ""
        uids = {i["metadata"]["uid"]: i["metadata"]["name"] for i in hub.jobs(namespace)
                if i["metadata"]["name"] in pending}
        members = {f"{c}/{j['metadata']['name']}": (uids[j["metadata"]["labels"]["carbonshift.io/job-uid"]],
                                                    j.get("status"), j["spec"].get("suspend"))
                   for c, js in hub.all_member_jobs().items() for j in js
                   if j["metadata"]["labels"]["carbonshift.io/job-uid"] in uids}
        raise AssertionError(f"{len(pending)} jobs never finished: "
                             f"{ {n: phases.get(n) for n in sorted(pending)} }\nmember Jobs: {members}\n{tail}")
    return result


def check_invariants(hub: Hub, finished: dict[str, dict[str, Any]], ledger: Counter[str] | None = None,
                     deleted_uids: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """After a fault: each job Succeeded with exactly one member Job, in the cluster and namespace
    its status names; no copies for deleted jobs; its decision met its deadline when it could."""
    copies = hub.copies_by_uid()
    all_jobs = hub.all_member_jobs()
    # The MemberCluster a Job was made for (two MemberClusters may share one physical cluster).
    where = {j["metadata"]["labels"]["carbonshift.io/job-uid"]: (j["metadata"]["labels"].get(
        "carbonshift.io/member-cluster", c), j) for c, js in all_jobs.items() for j in js}
    problems = []
    for name, item in finished.items():
        uid = item["metadata"]["uid"]
        status = item.get("status") or {}
        if status.get("phase") != "Succeeded":
            problems.append(f"{name}: phase {status.get('phase')} ({status.get('message')})")
            if ledger is not None:
                ledger["lost"] += 1
        if copies[uid] != 1:
            problems.append(f"{name}: {copies[uid]} member Jobs")
            if ledger is not None:
                ledger["duplicates" if copies[uid] > 1 else "lost"] += 1
            continue
        cluster, member_job = where[uid]
        ref = status.get("memberJob") or {}
        if (ref.get("cluster"), ref.get("namespace"), ref.get("name")) != (
                cluster, member_job["metadata"]["namespace"], member_job["metadata"]["name"]):
            problems.append(f"{name}: status.memberJob {ref} but the Job is {cluster}/"
                            f"{member_job['metadata']['namespace']}/{member_job['metadata']['name']}")
            if ledger is not None:
                ledger["status untrue"] += 1
        if member_job["metadata"]["namespace"] != item["metadata"]["namespace"]:  # namespace sameness
            problems.append(f"{name}: member Job in namespace {member_job['metadata']['namespace']}")
        decision = status.get("decision") or {}
        if decision.get("cluster") != cluster:
            problems.append(f"{name}: decided {decision.get('cluster')} but ran in {cluster}")
            if ledger is not None:
                ledger["status untrue"] += 1
    for uid in deleted_uids:
        if copies[uid]:
            problems.append(f"deleted job {uid} still has {copies[uid]} member Jobs")
            if ledger is not None:
                ledger["orphans"] += 1
    assert not problems, "\n".join(problems)


def deadline_kept(item: dict[str, Any], duration: timedelta) -> bool:
    """The decision's planned end lies before the job's deadline, or the status says it cannot."""
    status = item.get("status") or {}
    decision = status.get("decision") or {}
    if condition(status, "DeadlineAtRisk").get("status") == "True":
        return True  # reported honestly: the deadline could not be met
    reasons = {r["code"] for r in decision.get("reasons") or []}
    return bool(decision) and ("DeadlineUnmeetable" not in reasons)


# ----- a carbon provider we can break ---------------------------------------------------------
class StubElectricityMaps:
    """A loopback Electricity Maps v3 API whose behaviour ``mode`` is switched by the test:
    ``ok``, ``slow`` (answers after 15 s, past the 10 s client timeout), ``error`` (HTTP 500),
    ``echo`` (HTTP 500 whose body repeats the request headers, token included), ``stale`` (data
    30 hours old), ``absurd`` (1e9 g/kWh), ``negative``, ``garbage`` (not JSON).
    Times follow ``now`` (the operator's clock)."""

    def __init__(self, zone: str = "DE", now: Any = None) -> None:
        self.zone = zone
        self.mode = "ok"
        self.now = now or (lambda: datetime.now(timezone.utc))
        self.requests: Counter[str] = Counter()
        self.tokens: set[str] = set()
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                stub._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        parts = req.path.split("?")[0].strip("/").split("/")
        mode = self.mode
        self.requests[mode] += 1
        if req.headers.get("auth-token"):
            self.tokens.add(req.headers["auth-token"])
        if mode == "slow":
            time.sleep(15)
        if mode in ("error", "echo"):
            # "echo" is the worst case: an error page that starts by repeating our credentials.
            body = (f"invalid request with auth-token {req.headers.get('auth-token')}: "
                    f"{json.dumps(dict(req.headers.items()))}".encode() if mode == "echo" else b'{"error":"boom"}')
            return self._send(req, 500, body)
        if mode == "garbage":
            return self._send(req, 200, b"<html>not json</html>")
        now = self.now().replace(minute=0, second=0, microsecond=0)
        if mode == "stale":
            now -= timedelta(hours=30)
        value = {"absurd": 1e9, "negative": -250.0}.get(mode)

        def point(t: datetime, i: int) -> dict[str, Any]:
            v = value if value is not None else 150.0 + 10 * i  # rising: now is greenest
            return {"zone": self.zone, "carbonIntensity": v, "datetime": t.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
                    "updatedAt": now.strftime("%Y-%m-%dT%H:%M:%S.000Z"), "isEstimated": False}

        what = parts[-1] if parts else ""
        if what == "latest":
            body = point(now, 0)
        elif what == "forecast":
            body = {"zone": self.zone, "forecast": [point(now + timedelta(hours=h), h) for h in range(48)],
                    "updatedAt": now.strftime("%Y-%m-%dT%H:%M:%S.000Z")}
        elif what in ("history", "past-range"):
            key = "history" if what == "history" else "data"
            body = {"zone": self.zone, key: [point(now - timedelta(hours=h), 0) for h in range(24, 0, -1)]}
        else:
            return self._send(req, 404, b'{"error":"unknown path"}')
        self._send(req, 200, json.dumps(body).encode())

    @staticmethod
    def _send(req: BaseHTTPRequestHandler, code: int, body: bytes) -> None:
        try:
            req.send_response(code)
            req.send_header("Content-Type", "application/json")
            req.send_header("Content-Length", str(len(body)))
            req.end_headers()
            req.wfile.write(body)
        except OSError:
            pass


__all__ = [
    "ANCHORS", "CLOCK_SPEED", "FULL", "STATE_DIR", "ChaosPlane", "Hub", "JOB_NAMESPACE", "MEMBERS", "OPERATOR_NAMESPACE", "OperatorProcess",
    "StubElectricityMaps", "TRACES", "_member_ready", "alive_and_serving", "check_invariants", "condition",
    "free_port", "job", "load_private_localcluster", "member_manifest", "origin_argv", "parse_time",
    "register_members", "restart", "start_operator", "wait_all_terminal", "wait_until",
]
