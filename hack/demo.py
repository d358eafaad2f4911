"""`make demo`: the whole product on this machine, with no network, no Docker and no data beside the clone.

1. the demo's own local control plane (hub + eu-de, eu-gb, us-ca) from hack/localcluster.py, in
   .state/demo/cluster on ports CARBONSHIFT_PORT_OFFSET + 50: `make test` and its leftovers never
   share it;
2. `carbonshift exporter` replaying the traces shipped in the package (Electricity Maps, Germany and
   Great Britain 2022) from one fixed moment, ANCHOR, plus a simulated solar array and battery that
   follow the same moment, scraped by a real Prometheus;
3. MemberClusters: eu-de and eu-gb read Prometheus, us-ca replays its bundled trace from ANCHOR too;
4. a CarbonPolicy and the CarbonAwareJobs in examples/demo/, then the operator (real clock);
5. waits until the decisions are made and prints each one with its reasons and the gCO2eq saved.

The story is pinned to ANCHOR, not to the hour of the day: the operator's clock is the real one,
but every signal it reads starts at ANCHOR when the demo starts. A second `make demo` restarts the
exporter, Prometheus and the operator (re-pinning the story) and starts from a fresh demo namespace.
`make demo` returns once the decisions are shown and leaves everything running to explore;
`make demo-stop` stops exactly what it started (its processes and its control plane).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

# The demo's own control plane: its own state folder and ports, set before localcluster reads them.
USER_OFFSET = int(os.environ.get("CARBONSHIFT_PORT_OFFSET", "0"))
DEMO_OFFSET = USER_OFFSET + 50
os.environ["CARBONSHIFT_PORT_OFFSET"] = str(DEMO_OFFSET)

from localcluster import REPO_ROOT, LocalControlPlane
from members import OPERATOR_NAMESPACE, apply_crds, kubectl, member_manifest

STATE = REPO_ROOT / ".state" / "demo"
PLANE_STATE = STATE / "cluster"
EXPORTER_PORT, PROMETHEUS_PORT, METRICS_PORT = 19464 + USER_OFFSET, 19090 + USER_OFFSET, 18080 + USER_OFFSET
# 30 September 2022, 19:00 UTC: Germany's grid falls from 458 to 268 gCO2eq/kWh over the next five
# hours as the evening peak ends, while Great Britain's is at 158 and falling (bundled traces).
ANCHOR = "2022-09-30T19:00:00Z"
DEMO_NAMESPACE = "demo"
MEMBERS = ("eu-de", "eu-gb", "us-ca")
CARBONSHIFT = [sys.executable, "-m", "carbonshift"]
PROCESSES = ("operator", "exporter", "prometheus")  # stopped in this order


def say(text: str) -> None:
    print(f"\033[1m==> {text}\033[0m", flush=True)


def _pids() -> dict[str, int]:
    path = STATE / "pids.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _alive(pid: int) -> bool:
    """Alive and still the demo's own process: PIDs are recycled, and a stale pids.json must never
    make `make demo-stop` signal someone else's process (each demo process's command line names
    this clone: its Python, or Prometheus' state folder)."""
    if not LocalControlPlane._alive(pid):
        return False
    try:
        return str(REPO_ROOT).encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False


def start(name: str, argv: list[str]) -> None:
    log = open(STATE / f"{name}.log", "ab")  # owned by the child
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO_ROOT)
    pids = _pids()
    pids[name] = proc.pid
    (STATE / "pids.json").write_text(json.dumps(pids))


def stop_processes() -> None:
    """Stops the demo's own processes (by the PIDs it recorded, each in its own session)."""
    pids = _pids()
    for name in PROCESSES:
        pid = pids.pop(name, None)
        if pid is None or not _alive(pid):
            continue
        try:
            os.killpg(pid, signal.SIGTERM)
        except OSError:
            continue
        for _ in range(100):
            if not _alive(pid):
                break
            time.sleep(0.1)
        else:
            os.killpg(pid, signal.SIGKILL)
        print(f"   stopped {name}")
    (STATE / "pids.json").write_text(json.dumps(pids))


def wait_for(what: str, check: Any, timeout: float = 120.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            value = check()
        except (OSError, RuntimeError, KeyError, ValueError):
            value = None
        if value:
            return value
        time.sleep(1)
    raise SystemExit(f"demo: {what} did not happen within {timeout:.0f} s; logs are in {STATE}")


def prometheus_query(query: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{PROMETHEUS_PORT}/api/v1/query?" + urllib.parse.urlencode({"query": query})
    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())["data"]["result"]


def start_signals() -> None:
    start("exporter", [*CARBONSHIFT, "exporter", f"--port={EXPORTER_PORT}", "--region", "eu-de=DE",
                       "--region", "eu-gb=GB", f"--anchor={ANCHOR}", "--forecast-hours=24",
                       "--solar-peak-watts=4000", "--battery-capacity-wh=20000"])
    config = STATE / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 5s, evaluation_interval: 5s}\n"
        "scrape_configs:\n"
        f"- job_name: carbonshift-exporter\n  static_configs: [{{targets: ['127.0.0.1:{EXPORTER_PORT}']}}]\n"
        f"- job_name: carbonshift-operator\n  static_configs: [{{targets: ['127.0.0.1:{METRICS_PORT}']}}]\n")
    # A fresh database each time: samples of an earlier run replay another moment.
    shutil.rmtree(STATE / "prometheus", ignore_errors=True)
    start("prometheus", ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={STATE / 'prometheus'}",
                         f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}", "--storage.tsdb.retention.time=7d"])
    anchor = datetime.fromisoformat(ANCHOR.replace("Z", "+00:00")).timestamp()
    wait_for("Prometheus scraping the exporter", lambda: len([
        r for r in prometheus_query("carbonshift_exporter_trace_time_seconds")
        if abs(float(r["value"][1]) - anchor) < 600]) >= 2, timeout=60)


def register(plane: LocalControlPlane) -> None:
    apply_crds(plane)
    kubectl(plane, "hub", "apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": OPERATOR_NAMESPACE}}))
    prometheus = f"http://127.0.0.1:{PROMETHEUS_PORT}"
    for name, zone in (("eu-de", "DE"), ("eu-gb", "GB"), ("us-ca", "US-CAL-CISO")):
        secret = subprocess.run(
            ["kubectl", "create", "secret", "generic", f"member-{name}", "-n", OPERATOR_NAMESPACE,
             f"--from-file=kubeconfig={plane.kubeconfig(name)}", "--dry-run=client", "-o", "json"],
            capture_output=True, text=True, check=True).stdout
        kubectl(plane, "hub", "apply", "-f", "-", input=secret)
        if name == "us-ca":
            manifest = member_manifest(name, zone, zone, ANCHOR)
        else:
            manifest = member_manifest(name, zone, "", None)
            manifest["spec"]["carbonSignal"] = {"provider": "prometheus", "prometheus": {
                "url": prometheus, "query": f'carbonshift_grid_intensity_g_per_kwh{{region="{name}"}}',
                "forecastQuery": f'carbonshift_grid_intensity_forecast_g_per_kwh{{region="{name}"}}'}}
        if name == "eu-de":
            manifest["spec"]["energy"] = {
                "prometheusUrl": prometheus,
                "solarPowerQuery": 'carbonshift_solar_power_watts{region="eu-de"}',
                "batteryStateOfChargeQuery": 'carbonshift_battery_state_of_charge_ratio{region="eu-de"}',
                "batteryCapacityQuery": 'carbonshift_battery_capacity_watt_hours{region="eu-de"}',
                "batteryMaxDischargeWatts": 5000}
        kubectl(plane, "hub", "apply", "-f", "-", input=json.dumps(manifest))
    # Only the demo's members: anything else registered on this plane would take part in the story.
    for other in kubectl(plane, "hub", "get", "memberclusters", "-o", "name").split():
        if other.split("/", 1)[1] not in MEMBERS:
            kubectl(plane, "hub", "delete", other, "--wait=false")


def decided(plane: LocalControlPlane) -> dict[str, dict[str, Any]] | None:
    items = json.loads(kubectl(plane, "hub", "-n", DEMO_NAMESPACE, "get", "caj", "-o", "json"))["items"]
    by_name = {i["metadata"]["name"]: i for i in items}
    status = {n: i.get("status") or {} for n, i in by_name.items()}
    codes = {n: {r["code"] for r in (s.get("decision") or {}).get("reasons") or []} for n, s in status.items()}
    ready = (len(items) == 4 and all(s.get("decision") for s in status.values())
             and "DelayedToGreenerWindow" in codes.get("nightly-report", set())
             and status.get("train-model", {}).get("memberJob")
             and status.get("hotfix-build", {}).get("memberJob"))
    return by_name if ready else None


def _when(text: str | None, now: datetime) -> str:
    if not text:
        return "-"
    at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    delay = at - now
    if delay <= timedelta(minutes=1):
        return "now"
    hours, rest = divmod(int(delay.total_seconds()) // 60, 60)
    return f"in {hours} h {rest:02d} min"


def intensities() -> dict[str, float]:
    return {r["metric"]["region"]: float(r["value"][1])
            for r in prometheus_query("carbonshift_grid_intensity_g_per_kwh")}


def explain(plane: LocalControlPlane, jobs: dict[str, dict[str, Any]]) -> None:
    now = datetime.now(timezone.utc)
    grid = intensities()
    print(f"\n   Replayed moment: {ANCHOR} (the same whatever the hour now). Grid intensity now, gCO2eq/kWh: "
          + ", ".join(f"{r} {v:.0f}" for r, v in sorted(grid.items())) + ", us-ca from its own trace.")
    for name in ("hotfix-build", "nightly-report", "train-model", "param-sweep"):
        job = jobs.get(name)
        if job is None:
            continue
        spec, status = job["spec"], job.get("status") or {}
        decision = status.get("decision") or {}
        allowed = ", ".join((spec.get("placement") or {}).get("allowedRegions") or []) or "any"
        print(f"\n   {name}: may wait {spec.get('maxDelay', '-')}, runs {spec.get('estimatedDuration')}, "
              f"allowed in {allowed}{', interruptible' if spec.get('interruptible') else ''}")
        slots = decision.get("slots") or []
        where = decision.get("cluster") or decision.get("region") or "-"
        if len(slots) > 1:
            when = "; ".join(f"{_when(s['start'], now)} for {s['start'][11:16]}-{s['end'][11:16]} UTC" for s in slots)
        else:
            when = _when(decision.get("start"), now)
        print(f"     -> {status.get('phase', '?')}: in {where}, starts {when}")
        for reason in decision.get("reasons") or []:
            print(f"        because {reason['message']}")
        if decision.get("baselineGrams") is not None:
            print(f"        {float(decision.get('expectedGrams') or 0):.0f} gCO2eq expected instead of "
                  f"{float(decision['baselineGrams']):.0f} g at once in its preferred region")
    print()
    for cluster in MEMBERS:
        out = kubectl(plane, cluster, "get", "jobs", "-A", "--no-headers", "-l",
                      f"carbonshift.io/job-namespace={DEMO_NAMESPACE}", "-o", "custom-columns=NAME:.metadata.name")
        print(f"   Jobs running in {cluster}: {', '.join(out.split()) or '-'}")


def up() -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    plane = LocalControlPlane(PLANE_STATE)
    say(f"starting the demo's own control plane: hub, eu-de, eu-gb, us-ca (real API servers, kwok nodes; "
        f"state {PLANE_STATE.relative_to(REPO_ROOT)}, port offset {DEMO_OFFSET})")
    print(f"   ready in {plane.up():.1f} s")
    # An earlier `make demo` may still run: its replay started at another moment, so start afresh.
    stop_processes()
    say(f"replaying real grid intensity (Germany, Great Britain; Electricity Maps 2022) from {ANCHOR} "
        "into a real Prometheus")
    start_signals()
    say("registering the member clusters")
    register(plane)
    # A plane kept from an earlier run still holds that run's jobs: start from a fresh namespace. The
    # operator runs first, as it removes what those jobs left in the members.
    kubectl(plane, "hub", "delete", "namespace", DEMO_NAMESPACE, "--ignore-not-found", "--wait=false")
    say(f"running the operator (logs: {(STATE / 'operator.log').relative_to(REPO_ROOT)})")
    start("operator", [*CARBONSHIFT, "run", f"--kubeconfig={plane.kubeconfig('hub')}", "--no-leader-election",
                       f"--metrics-port={METRICS_PORT}", "--cycle-seconds=2"])
    wait_for("the removal of the previous demo namespace", lambda: not kubectl(
        plane, "hub", "get", "namespace", DEMO_NAMESPACE, "--ignore-not-found", "-o", "name").strip(), timeout=90)
    say("submitting a CarbonPolicy and four CarbonAwareJobs (examples/demo/)")
    kubectl(plane, "hub", "apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DEMO_NAMESPACE}}))
    kubectl(plane, "hub", "-n", DEMO_NAMESPACE, "apply", "-f", str(REPO_ROOT / "examples" / "demo"))
    started = time.monotonic()
    jobs = wait_for("the four decisions", lambda: decided(plane), timeout=120)
    say(f"decisions made in {time.monotonic() - started:.0f} s")
    explain(plane, jobs)
    statuses = [j.get("status") or {} for j in jobs.values()]
    baseline = sum(float((s.get("decision") or {}).get("baselineGrams") or 0) for s in statuses)
    expected = sum(float((s.get("decision") or {}).get("expectedGrams") or 0) for s in statuses)
    if baseline:
        say(f"expected {expected:.0f} gCO2eq instead of {baseline:.0f} gCO2eq if every job ran at once in its "
            f"preferred region: {baseline - expected:.0f} g saved ({(baseline - expected) / baseline:.0%})")
    print(f"\nExplore: export KUBECONFIG={plane.merged_kubeconfig}; kubectl describe caj -n {DEMO_NAMESPACE}\n"
          f"Metrics: http://127.0.0.1:{METRICS_PORT}/metrics  Prometheus: http://127.0.0.1:{PROMETHEUS_PORT}\n"
          "Everything keeps running; stop it with: make demo-stop")
    return 0


def stop() -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    stop_processes()
    stopped = LocalControlPlane(PLANE_STATE).down()
    if stopped:
        print(f"   stopped the demo's control plane ({len(stopped)} processes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(stop() if sys.argv[1:] == ["stop"] else up())
