"""The operator at scale on the real local control plane (hub + 3 regions, kwok nodes).

For each size (1,000 and 5,000 CarbonAwareJobs; ``BENCH_QUICK=1``: 60) this script, against its
OWN control plane (``CARBONSHIFT_STATE_DIR=.state/bench``, ``CARBONSHIFT_PORT_OFFSET=300``):

1. creates the same number of plain batch/v1 Jobs on the hub with the same client concurrency
   (suspended, so only the API server's write path is timed): the raw accept rate;
2. creates the CarbonAwareJobs (each may run in 2 of the 3 regions, kwok pods of 1 s) and follows
   them with one watch: create -> ``status.decision`` -> ``status.memberJob`` (dispatch) ->
   Succeeded, per job, on the client's monotonic clock; plus ``decidedAt`` vs
   ``creationTimestamp`` and the operator's ``carbonshift_decision_latency_seconds`` histogram;
3. counts API requests per job from ``apiserver_request_total`` on the hub and the members, and
   samples the operator's RSS and CPU from /proc.

The operator runs as the tests run it: ``python -m carbonshift run --kubeconfig <hub>
--no-leader-election --metrics-port <p> --cycle-seconds 1``. Every loop is bounded in count and
time; everything listens on 127.0.0.1. Writes ``operator_scale.json`` and a latency PNG.
Run: ``.venv/bin/python bench/operator_scale.py [--sizes 1000,5000] [--concurrency 8]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import common

os.environ.setdefault("CARBONSHIFT_STATE_DIR", str(common.REPO_ROOT / ".state" / "bench"))
os.environ.setdefault("CARBONSHIFT_PORT_OFFSET", "300")

from kubeclient import Kube, metric_sums
from stats import hist_quantile, pct
from localcluster import LocalControlPlane
from members import REGIONS, kubectl, member_manifest, register_members

GROUP_PATH = "/apis/carbonshift.io/v1alpha1"
MEMBERS = tuple(REGIONS)
CLUSTERS = ("hub", *MEMBERS)
CLK_TCK = os.sysconf("SC_CLK_TCK")


# A pod that meets the Pod Security level "restricted" (the operator's default).
RESTRICTED_POD: dict[str, Any] = {
    "restartPolicy": "Never",
    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{"name": "main", "image": "busybox", "command": ["true"],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
}


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def job_template(pod_seconds: float) -> dict[str, Any]:
    return {"spec": {"backoffLimit": 0, "template": {
        "metadata": {"annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": f"{pod_seconds:g}s"}},
        "spec": copy.deepcopy(RESTRICTED_POD),
    }}}


def caj(name: str, i: int, pod_seconds: float) -> dict[str, Any]:
    """Allowed in 2 of the 3 regions (rotating), a 10-minute job that may wait 1 minute: it runs now."""
    regions = [MEMBERS[i % 3], MEMBERS[(i + 1) % 3]]
    return {"apiVersion": "carbonshift.io/v1alpha1", "kind": "CarbonAwareJob", "metadata": {"name": name},
            "spec": {"estimatedDuration": "10m", "maxDelay": "1m", "power": {"watts": 300},
                     "placement": {"allowedRegions": regions, "preferredRegion": regions[0]},
                     "template": job_template(pod_seconds)}}


def plain_job(name: str, pod_seconds: float) -> dict[str, Any]:
    tpl = job_template(pod_seconds)
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {**tpl["spec"], "suspend": True}}


SHADOW_GROUP = "bench.carbonshift.io"


def install_shadow_crd(plane: LocalControlPlane) -> None:
    """The CarbonAwareJob CRD, schema and CEL rules unchanged, under a group no operator watches."""
    text = (common.REPO_ROOT / "crds" / "carbonshift.io_carbonawarejobs.yaml").read_text()
    text = text.replace("name: carbonawarejobs.carbonshift.io", f"name: carbonawarejobs.{SHADOW_GROUP}")
    text = text.replace("group: carbonshift.io", f"group: {SHADOW_GROUP}")
    kubectl(plane, "hub", "apply", "-f", "-", input=text)
    kubectl(plane, "hub", "wait", "--for=condition=Established", f"crd/carbonawarejobs.{SHADOW_GROUP}", "--timeout=30s")


def lifecycle_statuses(name: str, now: str) -> list[dict[str, Any]]:
    """The three status writes of a job that runs at once (dispatched, running, succeeded), shaped
    like the operator's: conditions, the decision with its reasons, the member Job."""
    conditions = [{"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": now,
                   "observedGeneration": 1}
                  for t, r, m in (("Valid", "Valid", "spec is valid; policy from operator defaults"),
                                  ("SignalsStale", "SignalsFresh", "all signals are fresh"),
                                  ("Scheduled", "RunNow", "eu-gb via eu-gb: expected 180 g vs 200 g baseline"),
                                  ("DeadlineAtRisk", "DeadlineSafe", f"planned to finish before {now}"),
                                  ("Dispatched", "Dispatched", "Job created in eu-gb"))]
    decision = {"region": "eu-gb", "cluster": "eu-gb", "start": now, "end": now, "decidedAt": now,
                "expectedGrams": 180.0, "baselineGrams": 200.0, "savedGrams": 20.0,
                "reasons": [{"code": "RunNow", "message": "no greener start within the allowed delay"}]}
    member = {"cluster": "eu-gb", "namespace": "carbonshift-jobs", "name": f"{name}-0123abcd", "uid": "0"}
    return [{"status": {"phase": "Dispatched", "decision": decision, "memberJob": member, "conditions": conditions,
                        "message": "dispatched to eu-gb (eu-gb)"}},
            {"status": {"phase": "Running", "message": "running in eu-gb"}},
            {"status": {"phase": "Succeeded", "message": "succeeded in eu-gb: 180 gCO2eq (20 g saved)",
                        "emissions": {"estimatedGrams": 180.0, "energyWattHours": 50.0}}}]


def lifecycle_floor(kube: Kube, n: int, concurrency: int, pod_seconds: float, tag: str) -> float:
    """Objects/s when a bare client makes the hub writes of n jobs' lives itself (no operator, no
    member work): create, three status merge patches, one Event — what an ideal operator costs."""
    ns = f"floor-{n}-{tag}"
    kube.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    path = f"/apis/{SHADOW_GROUP}/v1alpha1/namespaces/{ns}/carbonawarejobs"
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

    def life(i: int) -> None:
        body = caj(f"floor-{i}", i, pod_seconds)
        body["apiVersion"] = f"{SHADOW_GROUP}/v1alpha1"
        created = kube.request("POST", path, body)
        for status in lifecycle_statuses(body["metadata"]["name"], now):
            kube.request("PATCH", f"{path}/{body['metadata']['name']}/status", status,
                         content_type="application/merge-patch+json")
        kube.request("POST", f"/api/v1/namespaces/{ns}/events", {
            "apiVersion": "v1", "kind": "Event", "metadata": {"name": f"floor-{i}.{tag}", "namespace": ns},
            "involvedObject": {"apiVersion": body["apiVersion"], "kind": "CarbonAwareJob", "name": f"floor-{i}",
                               "namespace": ns, "uid": created["metadata"]["uid"]},
            "reason": "Dispatched", "message": "created Job in eu-gb", "type": "Normal",
            "source": {"component": "bench"}, "firstTimestamp": now, "lastTimestamp": now, "count": 1})

    t0 = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(life, range(n)))
    return n / (time.monotonic() - t0)


def decision_buckets(text: str) -> dict[float, float]:
    out: dict[float, float] = {}
    for (le,), v in metric_sums(text, "carbonshift_decision_latency_seconds_bucket", ("le",)).items():
        out[float(le)] = v
    return out


@dataclass
class OperatorProc:
    """``carbonshift run`` as a child process in its own session, with /proc sampling."""

    kubeconfig: Path
    log_path: Path
    port: int = field(default_factory=free_port)
    settings: dict[str, Any] = field(default_factory=dict)  # operator settings (the chart's keys)
    proc: subprocess.Popen[bytes] | None = None
    samples: list[tuple[float, float, float]] = field(default_factory=list)  # (t, rss MiB, cpu s)

    def start(self) -> None:
        argv = [sys.executable, "-m", "carbonshift", "run", f"--kubeconfig={self.kubeconfig}", "--no-leader-election",
                f"--metrics-port={self.port}", "--cycle-seconds=1"]
        if self.settings:
            path = self.log_path.with_name("operator-settings.json")  # JSON is YAML
            path.write_text(json.dumps(self.settings))
            argv.append(f"--settings={path}")
        env = dict(os.environ, PYTHONPATH=str(common.REPO_ROOT / "operator"))
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as resp:
            return str(resp.read().decode())

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return 0.0

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def sample(self) -> tuple[float, float, float]:
        s = (time.monotonic(), self.rss_mib(), self.cpu_s())
        self.samples.append(s)
        return s

    def stop(self) -> None:
        if self.alive():
            assert self.proc is not None
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)

    def log_tail(self, n: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])


def plane_cpu() -> dict[str, float]:
    """CPU seconds so far of each control-plane process of the bench's state dir, by component@cluster."""
    state = os.environ["CARBONSHIFT_STATE_DIR"]
    out: dict[str, float] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
            fields = (proc / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        args = [a.decode(errors="replace") for a in argv if a]
        if not args or not any(state in a for a in args):
            continue
        component = Path(args[0]).name
        cluster = next((c for c in CLUSTERS for a in args
                        if a.endswith((f"kubeconfig-{c}.yaml", f"/{c}")) or f"registry-{c}" in a), "")
        key = f"{component}@{cluster}" if cluster else component
        out[key] = out.get(key, 0.0) + (int(fields[11]) + int(fields[12])) / CLK_TCK
    return out


def wait_for(pred: Any, timeout: float, what: str, interval: float = 0.5) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout:.0f} s")


class Tracker:
    """Per-job timestamps from one watch on the CarbonAwareJobs of a namespace."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.decided: dict[str, float] = {}
        self.dispatched: dict[str, float] = {}
        self.finished: dict[str, float] = {}
        self.decided_at: dict[str, tuple[str, str]] = {}
        self.regions: dict[str, str] = {}

    def on_event(self, obj: dict[str, Any]) -> None:
        now = time.monotonic()
        name = obj["metadata"]["name"]
        status = obj.get("status") or {}
        with self.lock:
            if status.get("decision") and name not in self.decided:
                self.decided[name] = now
                self.decided_at[name] = (obj["metadata"]["creationTimestamp"], status["decision"].get("decidedAt", ""))
            if status.get("memberJob") and name not in self.dispatched:
                self.dispatched[name] = now
                self.regions[name] = status["memberJob"].get("cluster", "")
            if status.get("phase") in ("Succeeded", "Failed") and name not in self.finished:
                self.finished[name] = now


def api_counts(kubes: dict[str, Kube], texts: dict[str, str] | None = None) -> dict[str, dict[tuple[str, ...], float]]:
    texts = texts if texts is not None else {}
    for name, k in kubes.items():
        texts[name] = k.raw("/metrics")
    return {name: metric_sums(texts[name], "apiserver_request_total", ("verb", "resource", "subresource"))
            for name in kubes}


def hub_latency(before: str, after: str) -> dict[str, float]:
    """Mean hub API latency (ms) per verb over the phase, from apiserver_request_duration_seconds."""
    def sums(text: str, suffix: str) -> dict[tuple[str, ...], float]:
        return metric_sums(text, f"apiserver_request_duration_seconds_{suffix}", ("verb",))
    out = {}
    for key, total in sums(after, "sum").items():
        n = sums(after, "count").get(key, 0.0) - sums(before, "count").get(key, 0.0)
        if n >= 20 and key[0] != "WATCH":
            out[key[0]] = round(1000 * (total - sums(before, "sum").get(key, 0.0)) / n, 1)
    return out


def cycle_stats(before: str, after: str) -> dict[str, float]:
    n = (metric_sums(after, "carbonshift_cycle_duration_seconds_count").get((), 0.0)
         - metric_sums(before, "carbonshift_cycle_duration_seconds_count").get((), 0.0))
    total = (metric_sums(after, "carbonshift_cycle_duration_seconds_sum").get((), 0.0)
             - metric_sums(before, "carbonshift_cycle_duration_seconds_sum").get((), 0.0))
    return {"cycles": n, "mean_s": round(total / n, 2) if n else 0.0}


def profile(pid: int, seconds: int, path: Path) -> subprocess.Popen[bytes] | None:
    """py-spy (if installed) samples the operator's CPU for ``seconds`` into collapsed stacks."""
    spy = Path(sys.executable).parent / "py-spy"
    if not spy.exists():
        return None
    return subprocess.Popen([str(spy), "record", "--pid", str(pid), "--duration", str(seconds), "--rate", "50",
                             "--format", "raw", "--nonblocking", "-o", str(path)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def profile_summary(path: Path, top: int = 12) -> list[tuple[str, float]]:
    """Share of samples in which each carbonshift/kopf/kubernetes/pydantic frame appears (inclusive)."""
    if not path.exists():
        return []
    counts: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        total += int(n)
        seen = set()
        for frame in stack.split(";"):
            name = frame.split(" (")[0]
            where = frame.split(" (")[1] if " (" in frame else ""
            if name in ("<module>", "main", "run") or "asyncio/" in where:
                continue
            if any(k in where for k in ("carbonshift/", "kopf/", "pydantic", "kubernetes/", "json/", "urllib3/", "ssl")):
                label = f"{name} ({where.split('site-packages/')[-1].split('operator/')[-1].rstrip(')')})"
                if label not in seen:
                    seen.add(label)
                    counts[label] = counts.get(label, 0) + int(n)
    return [(k, round(v / total, 3)) for k, v in sorted(counts.items(), key=lambda kv: -kv[1])[:top]] if total else []


def count_delta(before: dict[str, dict[tuple[str, ...], float]],
                after: dict[str, dict[tuple[str, ...], float]]) -> dict[str, dict[str, float]]:
    """Per cluster: {"verb resource[/sub]": delta}, resource requests only (no /metrics, /readyz)."""
    out: dict[str, dict[str, float]] = {}
    for cluster, series in after.items():
        d: dict[str, float] = {}
        for (verb, resource, sub), v in series.items():
            if not resource:
                continue
            delta = v - before[cluster].get((verb, resource, sub), 0.0)
            if delta > 0:
                d[f"{verb} {resource}{'/' + sub if sub else ''}"] = delta
        out[cluster] = d
    return out


def create_all(kube: Kube, path: str, bodies: list[dict[str, Any]], concurrency: int,
               rate: float | None = None) -> tuple[float, float, dict[str, float]]:
    """POSTs all bodies with ``concurrency`` threads, as fast as possible or paced at ``rate`` per
    second (body i is sent at start + i / rate); returns (start, end, per-name response time)."""
    done: dict[str, float] = {}
    t0 = time.monotonic()

    def post(item: tuple[int, dict[str, Any]]) -> None:
        i, body = item
        if rate:
            time.sleep(max(0.0, t0 + i / rate - time.monotonic()))
        kube.request("POST", path, body)
        done[body["metadata"]["name"]] = time.monotonic()

    with ThreadPoolExecutor(concurrency) as pool:
        list(pool.map(post, enumerate(bodies)))
    return t0, time.monotonic(), done


def run_size(n: int, kubes: dict[str, Kube], op: OperatorProc, concurrency: int, pod_seconds: float,
             tag: str, profile_s: int = 0, rate: float | None = None) -> dict[str, Any]:
    """One run of n jobs: created as fast as the client can (a burst) or paced at ``rate``/s."""
    hub = kubes["hub"]
    if rate:
        tag = f"{tag}-paced"
    raw_rate: float | None = None
    floor_rate: float | None = None
    if not rate:  # the API servers' own rates belong with the burst, not with a paced run
        # 1. raw batch/v1 Jobs on the hub, same client, same concurrency.
        raw_ns = f"raw-{n}-{tag}"
        hub.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": raw_ns}})
        t0, t1, _ = create_all(hub, f"/apis/batch/v1/namespaces/{raw_ns}/jobs",
                               [plain_job(f"raw-{i}", pod_seconds) for i in range(n)], concurrency)
        raw_rate = n / (t1 - t0)
        print(f"[{n}] raw Jobs: {raw_rate:.0f}/s", flush=True)
        time.sleep(2)
        floor_rate = lifecycle_floor(hub, n, concurrency, pod_seconds, tag)
        print(f"[{n}] job lives by a bare client (hub writes only): {floor_rate:.0f}/s", flush=True)
        time.sleep(2)

    # 2. CarbonAwareJobs.
    ns = f"bench-{n}-{tag}"
    hub.request("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    path = f"{GROUP_PATH}/namespaces/{ns}/carbonawarejobs"
    rv = hub.request("GET", path, params={"limit": "1"})["metadata"]["resourceVersion"]
    tracker = Tracker()
    stop = threading.Event()
    timeout = 180 + 0.3 * n
    watcher = threading.Thread(target=hub.watch, args=(path, rv, tracker.on_event, stop, timeout + 120), daemon=True)
    watcher.start()
    metrics_before = op.metrics()
    texts_before: dict[str, str] = {}
    counts_before = api_counts(kubes, texts_before)
    own_before = hub.requests
    s0 = op.sample()
    cpu0 = plane_cpu()
    sampling = threading.Event()

    def sampler() -> None:
        while not sampling.wait(0.5) and op.alive():
            op.sample()

    threading.Thread(target=sampler, daemon=True).start()
    spy_path = common.out_dir() / f"profile-{n}.txt"
    spy = profile(op.pid, profile_s, spy_path) if profile_s > 0 else None
    c0, c1, created = create_all(hub, path, [caj(f"caj-{i}", i, pod_seconds) for i in range(n)], concurrency, rate)
    print(f"[{n}] CarbonAwareJobs created: {n / (c1 - c0):.0f}/s", flush=True)
    try:
        wait_for(lambda: len(tracker.dispatched) >= n or not op.alive(), timeout, f"{n} dispatches")
    except TimeoutError as exc:
        print(f"[{n}] {exc}; dispatched {len(tracker.dispatched)}", flush=True)
    t_disp = time.monotonic()
    s1 = op.sample()
    cpu1 = plane_cpu()
    texts_after: dict[str, str] = {}
    counts_after = api_counts(kubes, texts_after)
    own = hub.requests - own_before - 1  # minus the hub /metrics scrape of "after"
    metrics_after = op.metrics()
    try:
        wait_for(lambda: len(tracker.finished) >= n or not op.alive(), 120 + 0.1 * n, f"{n} Succeeded")
    except TimeoutError as exc:
        print(f"[{n}] {exc}; finished {len(tracker.finished)}", flush=True)
    sampling.set()
    stop.set()
    if spy is not None:
        try:
            spy.wait(timeout=60)
        except subprocess.TimeoutExpired:
            spy.kill()
    if not op.alive():
        print(op.log_tail(), flush=True)

    with tracker.lock:
        decide_lat = [tracker.decided[k] - created[k] for k in tracker.decided if k in created]
        disp_lat = [tracker.dispatched[k] - created[k] for k in tracker.dispatched if k in created]
        done_lat = [tracker.finished[k] - created[k] for k in tracker.finished if k in created]
        stamp_lat = [(datetime.fromisoformat(d.replace("Z", "+00:00")) - datetime.fromisoformat(c.replace("Z", "+00:00"))).total_seconds()
                     for c, d in tracker.decided_at.values() if d]
        last_dispatch = max(tracker.dispatched.values()) if tracker.dispatched else t_disp
        regions: dict[str, int] = {}
        for r in tracker.regions.values():
            regions[r] = regions.get(r, 0) + 1
        dispatched = len(tracker.dispatched)
    deltas = count_delta(counts_before, counts_after)
    hub_total = sum(deltas["hub"].values()) - own
    member_total = sum(sum(deltas[m].values()) for m in MEMBERS)
    member_operator = sum(v for m in MEMBERS for k, v in deltas[m].items()
                          if (k.endswith(" jobs") and not k.startswith("WATCH")) or k.endswith(" namespaces"))
    hb = {k: v - (decision_buckets(metrics_before).get(k, 0.0)) for k, v in decision_buckets(metrics_after).items()}
    window = [s for s in op.samples if s0[0] <= s[0] <= s1[0]]
    wall = s1[0] - s0[0]
    throughput = dispatched / (last_dispatch - c0) if dispatched else 0.0
    result = {
        "jobs": n, "concurrency": concurrency, "mode": f"paced {rate:g}/s" if rate else "burst", "dispatched": dispatched, "finished": len(tracker.finished),
        "raw_jobs_per_s": round(raw_rate, 1) if raw_rate else None, "caj_create_per_s": round(n / (c1 - c0), 1),
        "throughput_jobs_per_s": round(throughput, 1),
        "raw_over_throughput": round(raw_rate / throughput, 2) if throughput and raw_rate else None,
        "floor_lives_per_s": round(floor_rate, 1) if floor_rate else None,
        "floor_over_throughput": round(floor_rate / throughput, 2) if throughput and floor_rate else None,
        "create_to_decision_s": {"p50": pct(decide_lat, 0.5), "p99": pct(decide_lat, 0.99), "max": max(decide_lat, default=None)},
        "create_to_dispatch_s": {"p50": pct(disp_lat, 0.5), "p99": pct(disp_lat, 0.99), "max": max(disp_lat, default=None)},
        "create_to_succeeded_s": {"p50": pct(done_lat, 0.5), "p99": pct(done_lat, 0.99)},
        "decidedAt_minus_creationTimestamp_s": {"p50": pct(stamp_lat, 0.5), "p99": pct(stamp_lat, 0.99)},
        "operator_histogram_s": {"p50": hist_quantile(hb, 0.5), "p99": hist_quantile(hb, 0.99), "buckets": hb},
        "api_requests": {"hub_operator": hub_total, "members_operator": member_total and member_operator,
                         "members_all_components": member_total, "bench_client_own_hub": own,
                         "per_job_operator": round((hub_total + member_operator) / n, 2),
                         "per_job_all_components": round((hub_total + member_total) / n, 2),
                         "hub_by_verb_resource": dict(sorted(deltas["hub"].items(), key=lambda kv: -kv[1])[:12])},
        "operator": {"rss_mib_max": round(max((s[1] for s in window), default=s1[1]), 1),
                     "rss_mib_end": round(s1[1], 1),
                     "cpu_s": round(s1[2] - s0[2], 1), "cpu_cores_avg": round((s1[2] - s0[2]) / wall, 2) if wall else None,
                     "wall_s": round(wall, 1)},
        "regions": regions,
        "plane_cpu_s": {k: round(v - cpu0.get(k, 0.0), 1) for k, v in sorted(cpu1.items(), key=lambda kv: -kv[1])
                        if v - cpu0.get(k, 0.0) >= 0.5},
        "hub_api_mean_ms_by_verb": hub_latency(texts_before["hub"], texts_after["hub"]),
        "operator_cycles": cycle_stats(metrics_before, metrics_after),
        "events_dropped": (metric_sums(metrics_after, "carbonshift_events_dropped_total").get((), 0.0)
                           - metric_sums(metrics_before, "carbonshift_events_dropped_total").get((), 0.0)),
        "profile_top": profile_summary(spy_path) if spy is not None else [],
        "latencies": {"decision": [round(x, 4) for x in decide_lat], "dispatch": [round(x, 4) for x in disp_lat]},
    }
    print(f"[{n}] " + json.dumps({k: v for k, v in result.items() if k != "latencies"}), flush=True)
    return result


def plot_latency(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "decision", "create → decision in status"),
                           (axes[1], "dispatch", "create → Job created in member (dispatch)")):
        for r in results:
            values = np.sort(np.asarray(r["latencies"][key]))
            if values.size:
                ax.plot(values, np.arange(1, values.size + 1) / values.size, label=f"{r['jobs']:,} jobs, {r.get('mode', 'burst')}")
        ax.axvline(1.0, color="k", ls=":", lw=1, label="1 s target (decision p99)" if key == "decision" else None)
        ax.set_xscale("log")
        ax.set_xlabel("seconds (log)")
        ax.set_ylabel("fraction of jobs")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("carbonshift operator on the local control plane (hub + 3 regions, kwok)")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="60" if common.quick() else "1000,5000")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--pod-seconds", type=float, default=1.0)
    parser.add_argument("--profile-seconds", type=int, default=30, help="py-spy the operator this long (0: off)")
    parser.add_argument("--paced-sizes", default="", help="sizes to run again with creates paced at --paced-rate")
    parser.add_argument("--paced-rate", type=float, default=10.0, help="CarbonAwareJob creates per second when paced")
    parser.add_argument("--operator-setting", action="append", default=[], metavar="KEY=VALUE",
                        help="an operator setting (chart key, e.g. apiWorkers=8); repeatable")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    plane = LocalControlPlane()
    plane.up()
    register_members(plane)
    install_shadow_crd(plane)
    for name, (zone, trace) in REGIONS.items():
        manifest = member_manifest(name, zone, trace, None, {"capacity": {"maxConcurrentJobs": 20000}})
        kubectl(plane, "hub", "apply", "-f", "-", input=json.dumps(manifest))
    kubes = {c: Kube(plane.kubeconfig(c), args.concurrency) for c in CLUSTERS}
    log_path = common.out_dir() / "operator.log"
    settings = {k: json.loads(v) for k, _, v in (item.partition("=") for item in args.operator_setting)}
    op = OperatorProc(plane.kubeconfig("hub"), log_path, settings=settings)
    op.start()
    results: list[dict[str, Any]] = []
    tag = time.strftime("%H%M%S")
    try:
        wait_for(lambda: op.alive() and "carbonshift_jobs" in _safe(op.metrics), 90, "operator /metrics")
        wait_for(lambda: all((kubes["hub"].request("GET", f"{GROUP_PATH}/memberclusters/{m}").get("status") or {}).get("ready")
                             for m in MEMBERS), 90, "MemberClusters ready")
        print(f"operator up (pid {op.pid}), RSS {op.rss_mib():.0f} MiB", flush=True)
        for n in sizes:
            results.append(run_size(n, kubes, op, args.concurrency, args.pod_seconds, tag, args.profile_seconds))
        for n in [int(x) for x in args.paced_sizes.split(",") if x]:
            results.append(run_size(n, kubes, op, args.concurrency, args.pod_seconds, tag, 0, args.paced_rate))
    finally:
        op.stop()
    plot_latency(results, common.img_dir() / "operator_latency.png")
    common.write_result("operator_scale", {"sizes": sizes, "results": results, "pod_seconds": args.pod_seconds,
                                           "operator_settings": settings,
                                           "machine": common.machine(), "state_dir": os.environ["CARBONSHIFT_STATE_DIR"],
                                           "port_offset": os.environ["CARBONSHIFT_PORT_OFFSET"]})


def _safe(fn: Any) -> str:
    try:
        return str(fn())
    except OSError:
        return ""


if __name__ == "__main__":
    main()
