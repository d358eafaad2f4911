"""Measured accounting: where a member site's Prometheus has Kepler's per-pod energy counters,
a finished job's status carries measuredGrams next to the estimate.

A real Prometheus scrapes a small Kepler-shaped exporter (the counter names and labels Kepler
exports: kepler_container_joules_total{container_namespace, pod_name}); the job's pod draws a
constant 100 W in it while the member Job runs.
"""

from __future__ import annotations

import http.server
import json
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from operator_support import REGIONS, caj_manifest, free_port, member_manifest, wait_until

pytestmark = [pytest.mark.cluster, pytest.mark.prometheus]
PROMETHEUS = Path("/usr/bin/prometheus")
WATTS = 100.0


class KeplerLike:
    """Serves a joules counter for every pod name registered, growing at WATTS while 'running'."""

    def __init__(self) -> None:
        self.pods: dict[str, tuple[str, float]] = {}  # pod name -> (its namespace, monotonic start)
        self.started = time.monotonic()

    def body(self) -> bytes:
        now = time.monotonic()
        lines = ["# TYPE kepler_container_joules_total counter"]
        for pod, (namespace, since) in self.pods.items():
            lines.append(f'kepler_container_joules_total{{container_namespace="{namespace}",pod_name="{pod}",'
                         f'container_name="main"}} {WATTS * (now - since):.3f}')
        return ("\n".join(lines) + "\n").encode()


@pytest.fixture(scope="module")
def kepler_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KeplerLike, str]]:
    if not PROMETHEUS.exists():
        pytest.skip("needs /usr/bin/prometheus (hack/tools.sh installs it)")
    kepler = KeplerLike()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
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


def test_finished_job_reports_kepler_measured_emissions(operator, hub, make_namespace, control_plane,
                                                        kepler_prometheus) -> None:
    kepler, url = kepler_prometheus
    manifest = member_manifest("eu-kepler", "DE", REGIONS["eu-de"][1], None)
    manifest["spec"]["kubeconfigSecretRef"]["name"] = "member-eu-de"
    manifest["spec"]["energy"] = {"prometheusUrl": url}
    control_plane.kubectl("hub", "apply", "-f", "-", input=json.dumps(manifest))
    try:
        ns = make_namespace("hub", "kepler")
        hub.apply(ns, caj_manifest("measured", regions=["eu-kepler"], max_delay="1m", pod_seconds=8))
        status = wait_until(lambda: (s := hub.status(ns, "measured")).get("memberJob") and s, what="dispatch",
                            on_fail=operator.log_tail)
        # The pod starts drawing power, in the member namespace of the job's own name.
        kepler.pods[f"{status['memberJob']['name']}-abcde"] = (status["memberJob"]["namespace"], time.monotonic())
        done = wait_until(lambda: (s := hub.status(ns, "measured")).get("phase") == "Succeeded" and s, timeout=90,
                          what="Succeeded", on_fail=operator.log_tail)
        emissions = done["emissions"]
        assert emissions.get("measuredGrams", 0) > 0, emissions
        assert emissions["estimatedGrams"] > 0
    finally:
        control_plane.kubectl("hub", "delete", "mc", "eu-kepler", check=False)
