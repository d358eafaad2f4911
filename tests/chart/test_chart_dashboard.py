"""The chart's Grafana dashboard: shipped as the sidecar expects it, a panel for every metric the
operator exports, and every panel's PromQL answered by a real Prometheus that scrapes the
operator's own ``/metrics`` endpoint (controller/health.py), so a typo in a metric name, a label
value or the query syntax fails here rather than as an empty panel in a user's Grafana."""

from __future__ import annotations

import asyncio
import json
import math
import re
import socket
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from chart_support import find

PROMETHEUS = Path("/usr/bin/prometheus")
MONITORING = ("-f", "charts/carbonshift/ci/monitoring-values.yaml")
# Grafana's built-in variables, as Grafana would fill them in for a 1 h view.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__range": "1h", "$__interval": "15s"}


def dashboard_configmap(render: Callable[..., list[dict]], *args: str) -> dict:
    (cm,) = find(render(*MONITORING, *args), "ConfigMap", "carbonshift-dashboard")
    return cm


def panel_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every query, rows' nested panels included."""
    out = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            out.extend((inner["title"], t["expr"]) for t in inner.get("targets", []))
    return out


def grafana_expand(expr: str) -> str:
    for name, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, f"unknown Grafana variable in {expr}"
    return expr


def exported_families() -> dict[str, set[str]]:
    """Metric family -> the sample names it exports (``_total``, ``_bucket``, ...)."""
    metrics = pytest.importorskip("carbonshift.controller.metrics")
    families: dict[str, set[str]] = {}
    for family in metrics.Metrics().registry.collect():
        names = {family.name, *(s.name for s in family.samples)}
        if family.type == "counter":
            names.add(family.name + "_total")
        if family.type == "histogram":
            names |= {family.name + suffix for suffix in ("_bucket", "_sum", "_count")}
        families[family.name] = names
    return families


def test_configmap_is_labelled_for_the_grafana_sidecar(render: Callable[..., list[dict]]) -> None:
    cm = dashboard_configmap(render)
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "carbonshift"}
    assert json.loads(cm["data"]["carbonshift.json"])["uid"] == "carbonshift-operator"
    # A Grafana whose sidecar selects another label and reads the folder from another annotation.
    cm = dashboard_configmap(render, "--set", "metrics.dashboard.sidecarLabel=dashboards.example.org/grafana",
                             "--set", "metrics.dashboard.sidecarLabelValue=yes",
                             "--set", "metrics.dashboard.folderAnnotation=k8s-sidecar-target-directory",
                             "--set", "metrics.dashboard.folder=/tmp/dashboards/Carbon")
    assert cm["metadata"]["labels"]["dashboards.example.org/grafana"] == "yes"
    assert "grafana_dashboard" not in cm["metadata"]["labels"]
    assert cm["metadata"]["annotations"] == {"k8s-sidecar-target-directory": "/tmp/dashboards/Carbon"}
    assert not find(render(), "ConfigMap", "carbonshift-dashboard"), "off by default"


def test_every_exported_metric_has_a_panel_and_no_panel_reads_another(render: Callable[..., list[dict]]) -> None:
    families = exported_families()
    exported = set().union(*families.values())
    queries = panel_queries(json.loads(dashboard_configmap(render)["data"]["carbonshift.json"]))
    used: set[str] = set()
    for title, expr in queries:
        names = set(re.findall(r"\bcarbonshift_[a-z_]+", expr))
        assert names, f"{title}: {expr} reads no carbonshift metric"
        assert names <= exported, f"{title} reads {names - exported}, which the operator does not export"
        used |= names
    assert [f for f, names in families.items() if not names & used] == [], "metrics without a panel"
    titles = [t for t, _ in queries]
    for wanted in ("Net gCO2eq saved", "Savings fraction", "Jobs unplaced", "Unplaced jobs by reason"):
        assert wanted in titles


# ---- a real Prometheus scraping the operator's /metrics ------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _query(url: str, expr: str) -> dict:
    qs = urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(f"{url}/api/v1/query?{qs}", timeout=10) as resp:
            return dict(json.load(resp))
    except urllib.error.HTTPError as exc:  # 400 with the parse error in the body
        return dict(json.loads(exc.read() or b"{}") or {"status": "error", "error": str(exc)})


def _wait(check: Callable[[], bool], what: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"prometheus exited with {proc.returncode}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"timed out waiting for {what}")


def _count_job_series(metrics: object, step: int) -> None:
    """What a leader exports after some work: every family with a sample, counters growing by
    ``step`` (baseline 100 g and emitted 60 g per step: a 40% saving)."""
    from carbonshift.api.job import JobPhase
    from carbonshift.core.plan import ReasonCode

    m = metrics
    for i, phase in enumerate(JobPhase):
        m.jobs.labels(phase=phase).set(i)  # type: ignore[attr-defined]
    for reason in (ReasonCode.NO_CAPACITY, ReasonCode.NO_ALLOWED_REGION):
        m.unplaced.labels(reason=reason.value).set(2)  # type: ignore[attr-defined]
    m.emitted.labels(region="eu-de").inc(60 * step)  # type: ignore[attr-defined]
    m.baseline.labels(region="eu-de").inc(100 * step)  # type: ignore[attr-defined]
    m.saved.labels(region="eu-de").inc(40 * step)  # type: ignore[attr-defined]
    m.decision_latency.observe(0.2)  # type: ignore[attr-defined]
    m.cycle_seconds.observe(0.05)  # type: ignore[attr-defined]
    m.signal_age.labels(region="eu-de").set(120)  # type: ignore[attr-defined]
    m.signal_intensity.labels(region="eu-de").set(350)  # type: ignore[attr-defined]
    m.dispatch_errors.labels(cluster="member-a", operation="create").inc(step)  # type: ignore[attr-defined]
    m.dispatches.labels(cluster="member-a").inc(step)  # type: ignore[attr-defined]
    m.events_dropped.inc(step)  # type: ignore[attr-defined]
    m.member_ready.labels(cluster="member-a").set(1)  # type: ignore[attr-defined]
    m.deadline_misses.labels(hub_namespace="team-a", cluster="member-a").inc(step)  # type: ignore[attr-defined]
    m.kueue_workloads.labels(state="held").set(3)  # type: ignore[attr-defined]
    m.kueue_decisions.labels(decision="held").inc(step)  # type: ignore[attr-defined]
    m.kueue_cycle_seconds.observe(0.02)  # type: ignore[attr-defined]
    m.leader.set(1)  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def scraped_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus that has scraped the operator's /metrics at least three times, its
    counters growing in between; yields its URL."""
    if not PROMETHEUS.exists():
        pytest.fail("needs /usr/bin/prometheus: run `make tools` (hack/tools.sh installs Debian's prometheus package)")
    health = pytest.importorskip("carbonshift.controller.health")
    from carbonshift.controller.metrics import Metrics

    metrics = Metrics()
    _count_job_series(metrics, 1)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = health.HealthServer(metrics, ready=lambda: (True, "ready (leader)"))
    metrics_port = _free_port()
    asyncio.run_coroutine_threadsafe(server.start(metrics_port, "127.0.0.1"), loop).result(timeout=30)

    work = tmp_path_factory.mktemp("dashboard-prometheus")
    (work / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n"
        "scrape_configs:\n  - job_name: carbonshift\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n", encoding="utf-8")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (work / "prometheus.log").open("wb")
    proc = subprocess.Popen([str(PROMETHEUS), f"--config.file={work / 'prometheus.yml'}",
                             f"--storage.tsdb.path={work / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=log, stderr=subprocess.STDOUT)

    def scrapes() -> int:
        result = _query(url, "count_over_time(carbonshift_leader[5m])")["data"]["result"]
        return int(float(result[0]["value"][1])) if result else 0

    try:
        _wait(lambda: scrapes() >= 1, "the first scrape", proc)
        _count_job_series(metrics, 1)  # counters grow between scrapes, as on a working operator
        _wait(lambda: scrapes() >= 3, "three scrapes", proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)


def test_every_panel_query_returns_series_from_the_operators_metrics(
        render: Callable[..., list[dict]], scraped_prometheus: str) -> None:
    queries = panel_queries(json.loads(dashboard_configmap(render)["data"]["carbonshift.json"]))
    answers = {}
    for title, expr in queries:
        answer = _query(scraped_prometheus, grafana_expand(expr))
        assert answer.get("status") == "success", f"{title}: {expr}: {answer.get('error')}"
        assert answer["data"]["result"], f"{title}: {expr} returns no series from the operator's metrics"
        answers[title] = answer["data"]["result"]

    # A label value that does not exist (a typo inside `phase=~"Pending|Waiting"`) still leaves the
    # other alternatives' series: check each matcher's values against the values scraped.
    for title, expr in queries:
        for label, op, pattern in re.findall(r'(\w+)\s*(=~|=)\s*"([^"]*)"', expr):
            with urllib.request.urlopen(f"{scraped_prometheus}/api/v1/label/{label}/values", timeout=10) as resp:
                known = set(json.load(resp)["data"])
            wanted = pattern.split("|") if op == "=~" else [pattern]
            assert set(wanted) <= known, f"{title}: {label} has no value {set(wanted) - known}"

    def value(title: str) -> float:
        (series,) = answers[title]
        return float(series["value"][1])

    # Baseline 200 g, emitted 120 g: the saving is 40% (both counters scraped at the same instants,
    # so Prometheus' extrapolation cancels out of the ratio).
    assert math.isclose(value("Savings fraction"), 0.4, rel_tol=1e-9)
    assert value("Net gCO2eq saved") > 0
    assert value("Jobs unplaced") == 4
