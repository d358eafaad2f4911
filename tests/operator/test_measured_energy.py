"""Measured accounting: where a member site's Prometheus has Kepler's per-pod energy counters,
a finished job's status carries measuredGrams next to the estimate. Both Kepler lines users run:

* current (Kepler 0.10 and later, the default): ``kepler_pod_cpu_joules_total`` and
  ``kepler_pod_cpu_watts`` with labels ``pod_id, pod_name, pod_namespace, state, zone`` and the
  constant label ``node_name``, one series per RAPL zone (Kepler's docs/user/metrics.md);
* legacy (Kepler 0.7, ``spec.energy.keplerMetrics: legacy``): ``kepler_container_joules_total``
  with labels ``container_id, container_name, container_namespace, pod_name, mode``
  (dynamic and idle shares; kepler-doc docs/design/metrics.md).

A real Prometheus scrapes a small exporter serving that exposition text; each pod draws a
constant 100 W while it runs: for the current line, ``package`` 80 W (of which ``core`` 55 W
and ``uncore`` 10 W, which RAPL's package domain already contains) + ``dram`` 20 W; for the
legacy line, 70 W dynamic + 30 W idle. Each line's pods appear in that line's metrics only, so
a MemberCluster reading the wrong line measures nothing.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import subprocess
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from carbonshift.signals.kepler import KEPLER_CURRENT, KEPLER_LEGACY
from carbonshift.signals.prometheus import PrometheusSource, pod_energy_joules
from operator_support import REGIONS, caj_manifest, free_port, member_manifest, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus]
PROMETHEUS = Path("/usr/bin/prometheus")
WATTS = 100.0
#: current line: watts per RAPL zone; package (80) contains core and uncore, so the pod draws 80 + 20.
ZONES = {"package": 80.0, "core": 55.0, "uncore": 10.0, "dram": 20.0}
#: legacy line: watts per mode.
MODES = {"dynamic": 70.0, "idle": 30.0}


@dataclass
class Pod:
    namespace: str
    name: str
    since: float  # monotonic
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    until: float | None = None  # monotonic; None while it runs

    def seconds(self, now: float) -> float:
        return max(0.0, (self.until if self.until is not None else now) - self.since)


class KeplerLike:
    """Serves, for each registered pod, the exposition of its Kepler line, counters growing while it runs."""

    def __init__(self) -> None:
        self.pods: dict[str, list[Pod]] = {"current": [], "legacy": []}
        self.lock = threading.Lock()

    def add(self, line: str, namespace: str, name: str) -> Pod:
        pod = Pod(namespace, name, time.monotonic())
        with self.lock:
            self.pods[line].append(pod)
        return pod

    def body(self) -> bytes:
        now = time.monotonic()
        with self.lock:
            current, legacy = list(self.pods["current"]), list(self.pods["legacy"])
        lines = ["# HELP kepler_pod_cpu_joules_total Energy consumption of cpu at pod level in joules",
                 "# TYPE kepler_pod_cpu_joules_total counter"]
        for pod in current:
            for zone, watts in ZONES.items():
                lines.append(f'kepler_pod_cpu_joules_total{{node_name="kwok-node-0",pod_id="{pod.uid}",'
                             f'pod_name="{pod.name}",pod_namespace="{pod.namespace}",state="running",zone="{zone}"}} '
                             f"{watts * pod.seconds(now):.3f}")
        lines += ["# HELP kepler_pod_cpu_watts Power consumption of cpu at pod level in watts",
                  "# TYPE kepler_pod_cpu_watts gauge"]
        for pod in current:
            for zone, watts in ZONES.items():
                lines.append(f'kepler_pod_cpu_watts{{node_name="kwok-node-0",pod_id="{pod.uid}",pod_name="{pod.name}",'
                             f'pod_namespace="{pod.namespace}",state="running",zone="{zone}"}} '
                             f"{watts if pod.until is None else 0.0}")
        lines += ["# HELP kepler_container_joules_total Aggregated RAPL value in joules",
                  "# TYPE kepler_container_joules_total counter"]
        for pod in legacy:
            for mode, watts in MODES.items():
                lines.append(f'kepler_container_joules_total{{container_id="{pod.uid[:12]}",container_name="main",'
                             f'container_namespace="{pod.namespace}",mode="{mode}",pod_name="{pod.name}"}} '
                             f"{watts * pod.seconds(now):.3f}")
        return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def kepler_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KeplerLike, str]]:
    if not PROMETHEUS.exists():
        pytest.fail("needs /usr/bin/prometheus: run `make tools` (a prometheus test; make test installs it first)")
    kepler = KeplerLike()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = kepler.body()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    work = tmp_path_factory.mktemp("kepler-prom")
    port = free_port()
    config = work / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1s}\nscrape_configs:\n- job_name: kepler\n"
                      f"  static_configs: [{{targets: ['127.0.0.1:{server.server_address[1]}']}}]\n")
    proc = subprocess.Popen([str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={work / 'data'}",
                             f"--web.listen-address=127.0.0.1:{port}"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    try:
        wait_until(ready, timeout=30, what="Prometheus ready")
        yield kepler, url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        server.shutdown()


def _oldest_sample(url: str, query: str) -> float:
    """The oldest of the latest sample times of ``query``'s series (0 if none)."""
    async def ask() -> list[tuple[dict[str, str], datetime, float]]:
        prom = PrometheusSource(url, now=lambda: datetime.now(timezone.utc))
        try:
            return await prom.instant(query)
        finally:
            await prom.aclose()

    return min((value for _, _, value in asyncio.run(ask())), default=0.0)


@pytest.mark.parametrize(("line", "kepler", "share"), [
    ("current", KEPLER_CURRENT, WATTS / sum(ZONES.values())),  # package + dram of all four zones
    ("legacy", KEPLER_LEGACY, 1.0),                              # both modes
])
def test_pod_energy_is_the_pods_power_over_its_run(kepler_prometheus, line, kepler, share) -> None:
    """Each line's query gives the pod's 100 W over its run: for the current line exactly the package
    and dram share of all zones' increase (summing all four zones would say 165 W), for the legacy
    line both modes."""
    exporter, url = kepler_prometheus
    pod = exporter.add(line, "batch", f"direct-{line}-{uuid.uuid4().hex[:5]}")
    started = datetime.now(timezone.utc)
    time.sleep(8)  # the pod's run: what is measured
    pod.until = time.monotonic()
    stopped = time.time()
    ran = pod.seconds(pod.until)
    query = f'timestamp({kepler.metric}{{pod_name="{pod.name}"}})'
    wait_until(lambda: _oldest_sample(url, query) > stopped + 0.5, timeout=30,
               what="every series of the pod scraped after it stopped")
    end = datetime.now(timezone.utc)
    prom = PrometheusSource(url, now=lambda: datetime.now(timezone.utc))
    window = int((end - started).total_seconds()) + 2

    async def measure() -> tuple[float, float]:
        try:
            series = await pod_energy_joules(prom, "batch", pod.name, end - timedelta(seconds=window), end,
                                             kepler=kepler)
            every = await prom.instant(f'sum(increase({kepler.metric}{{pod_name="{pod.name}"}}[{window}s]))', end)
            return series.latest[1], every[0][2]
        finally:
            await prom.aclose()

    joules, every_series = asyncio.run(measure())
    # Not exact: the exposition rounds to mJ, and increase() extrapolates each series from its first
    # (small, rounded) sample, so the zones' shares drift by up to ~1e-3. Summing the wrong zones
    # would be off by 65 % (165 W instead of 100 W), far outside this tolerance.
    assert joules == pytest.approx(every_series * share, rel=1e-2)
    # Prometheus counts a new series from its first scraped value, so a loaded machine may measure
    # less than the run; never more than 100 W over it.
    assert 0 < joules <= WATTS * ran * 1.25, f"{joules:.0f} J for {ran:.1f} s at {WATTS} W"


@pytest.mark.parametrize("line", ["current", "legacy"])
def test_finished_job_reports_kepler_measured_emissions(operator, hub, make_namespace, control_plane,
                                                        kepler_prometheus, line) -> None:
    exporter, url = kepler_prometheus
    cluster = f"eu-kepler-{line}"
    manifest = member_manifest(cluster, "DE", REGIONS["eu-de"][1], None)
    manifest["spec"]["kubeconfigSecretRef"]["name"] = "member-eu-de"
    # The current line is the default; the legacy one is a setting.
    manifest["spec"]["energy"] = {"prometheusUrl": url, **({"keplerMetrics": "legacy"} if line == "legacy" else {})}
    control_plane.kubectl("hub", "apply", "-f", "-", input=json.dumps(manifest))
    try:
        ns = make_namespace("hub", f"kepler-{line}")
        hub.apply(ns, caj_manifest("measured", regions=[cluster], max_delay="1m", pod_seconds=8))
        status = wait_until(lambda: (s := hub.status(ns, "measured")).get("memberJob") and s, what="dispatch",
                            on_fail=operator.log_tail)
        member_job = status["memberJob"]
        pod = exporter.add(line, member_job["namespace"], f"{member_job['name']}-abcde")  # the pod draws power
        done = wait_until(lambda: (s := hub.status(ns, "measured")).get("phase") == "Succeeded" and s, timeout=90,
                          what="Succeeded", on_fail=operator.log_tail)
        pod.until = time.monotonic()
        emissions = done["emissions"]
        assert emissions.get("measuredGrams", 0) > 0, emissions
        assert emissions["estimatedGrams"] > 0
    finally:
        control_plane.kubectl("hub", "delete", "mc", cluster, check=False)
