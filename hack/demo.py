"""`make demo`: the whole product on this machine, with no network and no Docker.

1. the local control plane (hub + eu-de, eu-gb, us-ca) from hack/localcluster.py;
2. `carbonshift exporter` replaying real 2020 German and British intensity (anchored at
   2020-03-09 20:00 UTC, an evening when both grids got cleaner over the night) plus simulated
   solar and battery series, scraped by a real Prometheus;
3. MemberClusters: eu-de and eu-gb read Prometheus, us-ca replays its trace directly;
4. a CarbonPolicy and the CarbonAwareJobs in examples/demo/, then the operator (real clock);
5. waits until the decisions are made and prints them, with the gCO2eq saved.

Everything keeps running afterwards so you can explore; `make demo-stop` stops it all.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from localcluster import REPO_ROOT, LocalControlPlane
from members import OPERATOR_NAMESPACE, apply_crds, kubectl, member_manifest

STATE = REPO_ROOT / ".state" / "demo"
EXPORTER_PORT, PROMETHEUS_PORT, METRICS_PORT = 19464, 19090, 18080
ANCHOR = "2020-03-09T20:00:00Z"
DEMO_NAMESPACE = "demo"
CARBONSHIFT = [sys.executable, "-m", "carbonshift"]


def say(text: str) -> None:
    print(f"\033[1m==> {text}\033[0m", flush=True)


def start(name: str, argv: list[str]) -> None:
    pids = _pids()
    if name in pids and _alive(pids[name]):
        return
    log = open(STATE / f"{name}.log", "ab")  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=REPO_ROOT)
    pids[name] = proc.pid
    (STATE / "pids.json").write_text(json.dumps(pids))


def _pids() -> dict[str, int]:
    path = STATE / "pids.json"
    return json.loads(path.read_text()) if path.exists() else {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def wait_for(what: str, check: Any, timeout: float = 120.0) -> Any:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            value = check()
        except OSError:
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
    start("prometheus", ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={STATE / 'prometheus'}",
                         f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}", "--storage.tsdb.retention.time=7d"])
    wait_for("Prometheus scraping the exporter",
             lambda: len(prometheus_query("carbonshift_grid_intensity_g_per_kwh")) >= 2, timeout=60)


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
            manifest = member_manifest(name, zone, "decarbonization-potential/downloaded_carbon_data/"
                                       "US-CAL-CISO_2022_hourly.csv", "2022-03-09T20:00:00Z")
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


def decided(plane: LocalControlPlane) -> dict[str, dict[str, Any]] | None:
    items = json.loads(kubectl(plane, "hub", "-n", DEMO_NAMESPACE, "get", "caj", "-o", "json"))["items"]
    by_name = {i["metadata"]["name"]: i.get("status") or {} for i in items}
    codes = {n: {r["code"] for r in (s.get("decision") or {}).get("reasons") or []} for n, s in by_name.items()}
    ready = ("DelayedToGreenerWindow" in codes.get("nightly-report", set())
             and by_name.get("train-model", {}).get("memberJob")
             and by_name.get("hotfix-build", {}).get("memberJob"))
    return by_name if ready else None


def up() -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    plane = LocalControlPlane()
    say("starting the local control plane: hub, eu-de, eu-gb, us-ca (real API servers, kwok nodes)")
    print(f"   ready in {plane.up():.1f} s")
    say("replaying real grid intensity (Germany, Great Britain 2020) into a real Prometheus")
    start_signals()
    say("registering the member clusters, a CarbonPolicy and four CarbonAwareJobs")
    register(plane)
    # A control plane kept from an earlier run still holds that run's (finished) demo jobs: start
    # from a fresh namespace. The operator is started first, as it removes what those jobs left
    # in the members (and the finalizer that jobs of older versions carry).
    kubectl(plane, "hub", "delete", "namespace", DEMO_NAMESPACE, "--ignore-not-found", "--wait=false")
    say("running the operator (logs: .state/demo/operator.log)")
    start("operator", [*CARBONSHIFT, "run", f"--kubeconfig={plane.kubeconfig('hub')}", "--no-leader-election",
                       f"--metrics-port={METRICS_PORT}", "--cycle-seconds=2"])
    wait_for("the removal of the previous demo namespace", lambda: not kubectl(
        plane, "hub", "get", "namespace", DEMO_NAMESPACE, "--ignore-not-found", "-o", "name").strip(), timeout=90)
    for cluster in ("eu-de", "eu-gb", "us-ca"):
        kubectl(plane, cluster, "delete", "jobs", "-n", DEMO_NAMESPACE, "--ignore-not-found", "--wait=false",
                "-l", f"carbonshift.io/job-namespace={DEMO_NAMESPACE}")
    kubectl(plane, "hub", "apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": DEMO_NAMESPACE}}))
    kubectl(plane, "hub", "-n", DEMO_NAMESPACE, "apply", "-f", str(REPO_ROOT / "examples" / "demo"))
    started = time.monotonic()
    statuses = wait_for("the three decisions", lambda: decided(plane), timeout=120)
    say(f"decisions made in {time.monotonic() - started:.0f} s")
    print(kubectl(plane, "hub", "get", "caj", "-A"))
    print(kubectl(plane, "hub", "get", "memberclusters"))
    for name, status in sorted(statuses.items()):
        decision = status.get("decision") or {}
        reasons = "; ".join(r["message"] for r in decision.get("reasons") or [])
        print(f"  {name:15s} {status.get('phase', ''):10s} {decision.get('region', '-'):6s} {reasons}")
    for cluster in ("eu-de", "eu-gb", "us-ca"):
        jobs = kubectl(plane, cluster, "get", "jobs", "-n", DEMO_NAMESPACE, "--no-headers",
                       "-l", f"carbonshift.io/job-namespace={DEMO_NAMESPACE}",
                       "-o", "custom-columns=NAME:.metadata.name,FROM:.metadata.annotations.carbonshift\\.io/source")
        print(f"  Jobs in {cluster}: {', '.join(line.split()[0] for line in jobs.splitlines() if line) or '-'}")
    baseline = sum(float((s.get("decision") or {}).get("baselineGrams") or 0) for s in statuses.values())
    expected = sum(float((s.get("decision") or {}).get("expectedGrams") or 0) for s in statuses.values())
    if baseline:
        say(f"expected {expected:.0f} gCO2eq instead of {baseline:.0f} gCO2eq if run at once in the preferred "
            f"region: {baseline - expected:.0f} g saved ({(baseline - expected) / baseline:.0%})")
    print(f"\nExplore: export KUBECONFIG={plane.merged_kubeconfig}; kubectl describe caj -n {DEMO_NAMESPACE}\n"
          f"Metrics: http://127.0.0.1:{METRICS_PORT}/metrics  Prometheus: http://127.0.0.1:{PROMETHEUS_PORT}\n"
          "Stop everything: make demo-stop")
    return 0


def stop() -> int:
    for name, pid in _pids().items():
        try:
            os.killpg(pid, signal.SIGTERM)
            print(f"stopped {name}")
        except OSError:
            pass
    (STATE / "pids.json").unlink(missing_ok=True)
    LocalControlPlane().down()
    return 0


if __name__ == "__main__":
    raise SystemExit(stop() if sys.argv[1:] == ["stop"] else up())
