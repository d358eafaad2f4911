"""Fixtures for the signals tests: a real Prometheus server loaded with real traces, and
loopback HTTP servers that replay the SaaS APIs' documented response shapes.

The Prometheus fixture backfills days of the bundled traces (DE, GB; June 2022 onto June 2020)
through ``promtool tsdb create-blocks-from openmetrics`` (via the exporter's own backfill
writer), plus a synthetic Kepler counter, and also scrapes a live ``carbonshift exporter``.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Test the package next to these tests, even if the shared virtualenv's editable install
# points at another checkout (it did once: a CI dry-run clone under /tmp).
_OPERATOR_DIR = str(Path(__file__).resolve().parents[2] / "operator")
if _OPERATOR_DIR not in sys.path:
    sys.path.insert(0, _OPERATOR_DIR)

import json
import random
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from carbonshift.signals import RetryPolicy
from carbonshift.signals import exporter as exp
from carbonshift.signals.openmetrics import Family, write_openmetrics
from carbonshift.signals.trace import CalendarTimeMap
from signals_support import (
    BACKFILL_END, BACKFILL_START, KEPLER_END, KEPLER_POD, KEPLER_START, KEPLER_WATTS, FakeSleep, free_port,
)

PROMETHEUS = Path("/usr/bin/prometheus")
PROMTOOL = Path("/usr/bin/promtool")


@pytest.fixture
def fake_sleep() -> FakeSleep:
    return FakeSleep()


@pytest.fixture
def retry(fake_sleep: FakeSleep) -> RetryPolicy:
    return RetryPolicy(attempts=3, base_seconds=0.5, cap_seconds=4.0, rng=random.Random(42), sleep=fake_sleep)


# -- loopback HTTP API replay ---------------------------------------------------------
Reply = tuple[int, dict[str, str], Any]  # status, headers, JSON body (or bytes)
Route = Callable[[dict[str, list[str]], dict[str, str]], Reply]


@dataclass
class FakeApi:
    url: str
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, list[str]], dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0

    def json(self, path: str, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self.routes[path] = lambda q, h: (status, headers or {}, body)

    def sequence(self, path: str, replies: list[Reply]) -> None:
        """Answer ``path`` with each reply in turn, then keep repeating the last."""
        remaining = list(replies)

        def route(q: dict[str, list[str]], h: dict[str, str]) -> Reply:
            return remaining.pop(0) if len(remaining) > 1 else remaining[0]

        self.routes[path] = route


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    api = FakeApi(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = parse_qs(parts.query)
            headers = {k.lower(): v for k, v in self.headers.items()}
            api.requests.append((parts.path, query, headers))
            if api.delay:
                time.sleep(api.delay)
            route = api.routes.get(parts.path)
            status, extra, body = route(query, headers) if route else (404, {}, {"error": "not found"})
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield api
    server.shutdown()
    server.server_close()


@pytest.fixture
def refused_url() -> str:
    """A loopback URL nobody listens on (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


# -- real Prometheus -----------------------------------------------------------------
@dataclass
class PrometheusServer:
    url: str
    exporter_url: str


def _write_backfill(path: Path) -> None:
    clock = exp.Clock(BACKFILL_START)
    regions = exp.build_regions(["de=DE", "gb=GB"], clock, time_map=CalendarTimeMap(), noise=0.0, seed=0,
                                site_kwargs={})
    exp.write_backfill(path, regions, clock, start=BACKFILL_START, end=BACKFILL_END, step=timedelta(minutes=15),
                       forecast_hours=12, forecast_step=timedelta(hours=1))
    # A synthetic Kepler counter (clearly not real data): one pod drawing a constant 100 W.
    kepler = Family("kepler_container_joules", "counter", "Synthetic Kepler energy counter for tests.")
    labels = {"container_namespace": KEPLER_POD[0], "pod_name": KEPLER_POD[1], "container_name": "main", "mode": "dynamic"}
    t = KEPLER_START
    while t <= KEPLER_END:
        kepler.add(labels, t.timestamp(), KEPLER_WATTS * (t - KEPLER_START).total_seconds())
        t += timedelta(seconds=30)
    text = path.read_text(encoding="utf-8").removesuffix("# EOF\n")
    with path.open("w", encoding="utf-8") as out:
        out.write(text)
        write_openmetrics(out, [kepler])


def _wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("prometheus did not become ready")


@pytest.fixture(scope="session")
def prometheus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    if not PROMETHEUS.exists() or not PROMTOOL.exists():
        pytest.fail("needs /usr/bin/prometheus and /usr/bin/promtool: run `make tools` "
                    "(prometheus tests; make test installs them first, make test-unit leaves them out)")
    work = tmp_path_factory.mktemp("prometheus")
    backfill = work / "backfill.om"
    _write_backfill(backfill)
    data = work / "data"
    subprocess.run([str(PROMTOOL), "tsdb", "create-blocks-from", "openmetrics", "--quiet", str(backfill), str(data)],
                   check=True, capture_output=True, timeout=120)

    # A live exporter at 60x speed, scraped every second.
    clock = exp.Clock(datetime.now(timezone.utc), speed=60.0)
    regions = exp.build_regions(["de=DE", "gb=GB"], clock, time_map=CalendarTimeMap(), noise=0.0, seed=0,
                                site_kwargs={})
    exporter_port = free_port()
    server, _ = exp.serve(regions, host="127.0.0.1", port=exporter_port, forecast_hours=6,
                          forecast_step=timedelta(hours=1), speed=60.0)
    config = work / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: carbonshift-exporter\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n",
        encoding="utf-8",
    )
    port = free_port()
    log = (work / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [str(PROMETHEUS), f"--config.file={config}", f"--storage.tsdb.path={data}",
         f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, timeout=60)
        yield PrometheusServer(url=url, exporter_url=f"http://127.0.0.1:{exporter_port}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        server.shutdown()  # type: ignore[attr-defined]
        server.server_close()  # type: ignore[attr-defined]
        log.close()
        shutil.rmtree(data, ignore_errors=True)
