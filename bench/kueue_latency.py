"""Kueue with and without carbonshift: admission latency of a burst of Jobs through MultiKueue.

Why this benchmark exists: the Kueue path puts carbonshift in the admission of every Workload (the
green-window check) and in MultiKueue's dispatch. This measures what that costs when nothing is
delayed: N batch/v1 Jobs without an allowance, created in a burst on the hub, from creation (client
clock) to the Workload's Admitted condition (both API-server timestamps, 1 s steps). Two runs on the same plane:

- baseline: Kueue alone: ClusterQueue with the multikueue check only, Kueue's built-in
  all-at-once dispatcher (the hub's Kueue is restarted with it);
- carbonshift: ClusterQueue with green-window + multikueue, carbonshift's dispatcher and operator.

Needs a plane with Kueue (`hack/cluster up --kueue`; hack/bench.sh starts its own). Writes
``kueue_latency.json`` in BENCH_OUT.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "hack"))

from common import quick, write_result
from kubeclient import Kube
from kueue import CARBONSHIFT_DISPATCHER, KueuePlane
from localcluster import LocalControlPlane
from members import REGIONS, kubectl, member_manifest, register_members
from stats import pct

BUILTIN_DISPATCHER = "kueue.x-k8s.io/multikueue-dispatcher-all-at-once"
CREATE_THREADS = 8


def job(namespace: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "namespace": namespace, "labels": {"kueue.x-k8s.io/queue-name": "default"},
                         "annotations": {"carbonshift.io/regions": "eu-de,eu-gb,us-ca"}},
            "spec": {"suspend": True, "backoffLimit": 0, "template": {
                "metadata": {"annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": "600s"}},
                "spec": {"restartPolicy": "Never", "containers": [{
                    "name": "main", "image": "busybox", "command": ["true"],
                    "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}}}]}}}}


def run(plane: LocalControlPlane, kueue: KueuePlane, n: int, checks: tuple[str, ...], label: str,
        timeout_s: float) -> dict[str, Any]:
    namespace = f"kb-{label}-{uuid.uuid4().hex[:6]}"
    kueue.ensure_queues(namespace, cluster_queue=f"cq-{namespace}", checks=checks, cpu="1000", worker_cpu="1000")
    kueue.wait_queues_active(namespace, cluster_queue=f"cq-{namespace}")
    hub = Kube(plane.kubeconfig("hub"), concurrency=CREATE_THREADS)
    path = f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{namespace}/workloads"
    latencies: dict[str, float] = {}  # workload -> Admitted time - creation time (API server clock, 1 s steps)

    def poll() -> None:
        for wl in hub.request("GET", path).get("items") or []:
            name = wl["metadata"]["name"]
            admitted = [c for c in (wl.get("status") or {}).get("conditions") or []
                        if c.get("type") == "Admitted" and c.get("status") == "True"]
            if admitted and name not in latencies:
                latencies[name] = (_ts(admitted[0]["lastTransitionTime"])
                                   - _ts(wl["metadata"]["creationTimestamp"]))

    names = [f"j{i:05d}" for i in range(n)]
    started = time.monotonic()

    def create(chunk: list[str]) -> None:
        for name in chunk:
            hub.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", job(namespace, name))

    threads = [threading.Thread(target=create, args=(names[i::CREATE_THREADS],)) for i in range(CREATE_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    create_s = time.monotonic() - started
    end = time.monotonic() + timeout_s
    # Pods run for 10 minutes, so a Workload stays Admitted until it is seen (a poll every 2 s).
    while time.monotonic() < end and len(latencies) < n:
        poll()
        time.sleep(2.0)
    total_s = time.monotonic() - started
    values = sorted(latencies.values())
    for cluster in ["hub", *kueue.workers]:
        kubectl(plane, cluster, "delete", "namespace", namespace, "--wait=false")
        kubectl(plane, cluster, "delete", "clusterqueue", f"cq-{namespace}", "--wait=false")
    return {"label": label, "jobs": n, "admitted": len(values), "create_seconds": round(create_s, 2),
            "total_seconds": round(total_s, 2), "p50_s": pct(values, 50), "p90_s": pct(values, 90),
            "p99_s": pct(values, 99), "max_s": values[-1] if values else None}


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def start_operator(plane: LocalControlPlane, folder: Path) -> subprocess.Popen[bytes]:
    settings = folder / "kueue-operator-settings.yaml"
    settings.write_text(json.dumps({"kueue": {"enabled": True, "only": True, "periodSeconds": 1.0}}))
    log = open(folder / "kueue-operator.log", "ab")  # handed to the child
    return subprocess.Popen([sys.executable, "-m", "carbonshift", "run", f"--kubeconfig={plane.kubeconfig('hub')}",
                             f"--settings={settings}", "--no-leader-election", "--metrics-port=0"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=60 if quick() else 1000)
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per run to wait for admission")
    args = parser.parse_args()
    plane = LocalControlPlane()
    kueue = KueuePlane(plane)
    register_members(plane)
    for name, (zone, trace) in REGIONS.items():
        kubectl(plane, "hub", "apply", "-f", "-", input=json.dumps(member_manifest(name, zone, trace, None)))
    folder = Path(os.environ.get("BENCH_OUT", HERE.parent / ".state" / "bench-results"))
    folder.mkdir(parents=True, exist_ok=True)
    results = []
    kueue.restart_hub(BUILTIN_DISPATCHER)
    # After a restart MultiKueue needs a while before its first admission: not what is measured.
    print(json.dumps(run(plane, kueue, 2, ("multikueue",), "warmup", args.timeout)), flush=True)
    results.append(run(plane, kueue, args.jobs, ("multikueue",), "baseline", args.timeout))
    print(json.dumps(results[-1]), flush=True)
    kueue.restart_hub(CARBONSHIFT_DISPATCHER)
    operator = start_operator(plane, folder)
    try:
        time.sleep(5)  # the operator marks the check Active
        print(json.dumps(run(plane, kueue, 2, ("green-window", "multikueue"), "warmup", args.timeout)), flush=True)
        results.append(run(plane, kueue, args.jobs, ("green-window", "multikueue"), "carbonshift", args.timeout))
        print(json.dumps(results[-1]), flush=True)
    finally:
        os.killpg(operator.pid, signal.SIGTERM)
        operator.wait(timeout=30)
    base, ours = results
    ratio = {k: (ours[k] / base[k] if ours.get(k) and base.get(k) else None) for k in ("p50_s", "p99_s")}
    write_result("kueue_latency", {"runs": results, "ratio": ratio, "jobs": args.jobs})
    print(json.dumps({"ratio": ratio}))


if __name__ == "__main__":
    main()
