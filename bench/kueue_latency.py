"""Kueue with and without carbonshift: admission latency of a burst of Jobs through MultiKueue.

Why this benchmark exists: the Kueue path puts carbonshift in the admission of every Workload (the
green-window check) and in MultiKueue's dispatch. This measures what that costs when nothing is
delayed: N batch/v1 Jobs without an allowance, created in a burst on the hub, from creation (client
clock) to the Workload's Admitted condition (seen by a watch). Two runs on the same plane:

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
                "metadata": {"annotations": {"pod-complete.stage.kwok.x-k8s.io/delay": "1s"}},
                "spec": {"restartPolicy": "Never", "containers": [{
                    "name": "main", "image": "busybox", "command": ["true"],
                    "resources": {"requests": {"cpu": "10m", "memory": "8Mi"}}}]}}}}


def run(plane: LocalControlPlane, kueue: KueuePlane, n: int, checks: tuple[str, ...], label: str,
        timeout_s: float) -> dict[str, Any]:
    namespace = f"kb-{label}-{uuid.uuid4().hex[:6]}"
    kueue.ensure_queues(namespace, cluster_queue=f"cq-{namespace}", checks=checks, cpu="1000", worker_cpu="1000")
    hub = Kube(plane.kubeconfig("hub"), concurrency=CREATE_THREADS)
    created: dict[str, float] = {}  # job name -> monotonic time the create returned
    admitted: dict[str, float] = {}
    lock = threading.Lock()
    stop = threading.Event()

    def on_event(obj: dict[str, Any]) -> None:
        owners = [r.get("name") for r in (obj.get("metadata") or {}).get("ownerReferences") or []]
        if any(c.get("type") == "Admitted" and c.get("status") == "True"
               for c in (obj.get("status") or {}).get("conditions") or []):
            with lock:
                for owner in owners:
                    admitted.setdefault(owner, time.monotonic())

    listing = hub.request("GET", f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{namespace}/workloads")
    watcher = threading.Thread(target=hub.watch, daemon=True, args=(
        f"/apis/kueue.x-k8s.io/v1beta2/namespaces/{namespace}/workloads",
        listing["metadata"]["resourceVersion"], on_event, stop, timeout_s + 60))
    watcher.start()
    names = [f"j{i:05d}" for i in range(n)]
    started = time.monotonic()

    def create(chunk: list[str]) -> None:
        for name in chunk:
            hub.request("POST", f"/apis/batch/v1/namespaces/{namespace}/jobs", job(namespace, name))
            with lock:
                created[name] = time.monotonic()

    threads = [threading.Thread(target=create, args=(names[i::CREATE_THREADS],)) for i in range(CREATE_THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    create_s = time.monotonic() - started
    end = time.monotonic() + timeout_s
    while time.monotonic() < end and len(admitted) < n:
        time.sleep(0.5)
    stop.set()
    total_s = time.monotonic() - started
    latencies = [admitted[k] - created[k] for k in names if k in admitted and k in created]
    for cluster in ["hub", *kueue.workers]:
        kubectl(plane, cluster, "delete", "namespace", namespace, "--wait=false")
        kubectl(plane, cluster, "delete", "clusterqueue", f"cq-{namespace}", "--wait=false")
    return {"label": label, "jobs": n, "admitted": len(latencies), "create_seconds": round(create_s, 2),
            "total_seconds": round(total_s, 2), "p50_s": pct(latencies, 50), "p90_s": pct(latencies, 90),
            "p99_s": pct(latencies, 99), "max_s": max(latencies) if latencies else None}


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
    results.append(run(plane, kueue, args.jobs, ("multikueue",), "baseline", args.timeout))
    print(json.dumps(results[-1]), flush=True)
    kueue.restart_hub(CARBONSHIFT_DISPATCHER)
    operator = start_operator(plane, folder)
    try:
        time.sleep(5)  # the operator marks the check Active
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
