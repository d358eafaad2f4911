"""Smoke test of the benchmarks (issue 7): every carbon/planner bench runs on a tiny input
(``BENCH_QUICK=1``) and the report keeps the core's "Planner speed" section verbatim.

Runs in `make test` and `make test-unit` (no control plane needed) in well under 30 s; the
operator-at-scale bench needs the control plane and is exercised by `make bench` only, but its
pure helpers are checked here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO_ROOT / "bench"))

pytestmark = pytest.mark.timeout(120)

# The carbon benches replay research traces that are not shipped (Let's Wait Awhile, Vessim, the paper's
# per-zone traces).
research = [pytest.mark.research_data("lets-wait-awhile"), pytest.mark.research_data("vessim"),
            pytest.mark.research_data("decarbonization-potential")]


@pytest.fixture
def quick_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("BENCH_QUICK", "1")
    monkeypatch.setenv("BENCH_OUT", str(tmp_path / "out"))
    monkeypatch.setenv("BENCH_IMG", str(tmp_path / "img"))
    return tmp_path


@research[0]
@research[1]
@research[2]
def test_benches_run_small_and_the_report_is_complete(quick_env: Path) -> None:
    import carbon_onsite
    import carbon_spatial
    import carbon_temporal
    import common
    import planner_scaling
    import report

    common.write_result("machine", common.machine())
    temporal = carbon_temporal.run(quick=True)
    assert temporal["rows"] and all(r["deadline_misses"] == 0 for r in temporal["rows"])
    assert all(r["savings_pct"] <= r["oracle_savings_pct"] + 1e-9 for r in temporal["rows"] if r["forecast_error"] == 0)
    common.write_result("carbon_temporal", temporal)
    spatial = carbon_spatial.run(quick=True)
    by_case = {r["case"].split(" (")[0].split(",")[0]: r for r in spatial["rows"]}
    assert by_case["spatial + temporal"]["savings_pct"] > by_case["temporal only"]["savings_pct"]
    assert all(r["deadline_misses"] == 0 for r in spatial["rows"])
    common.write_result("carbon_spatial", spatial)
    onsite = carbon_onsite.run(quick=True)
    rows = {(r["planner"].split()[0], r["site"]): r for r in onsite["rows"]}
    assert rows[("carbonshift", "solar + battery")]["grid_kwh"] <= rows[("carbonshift", "solar")]["grid_kwh"] + 1e-6
    assert rows[("carbonshift", "solar")]["grid_g"] < rows[("baseline", "solar")]["grid_g"]
    common.write_result("carbon_onsite", onsite)
    scaling = planner_scaling.run(quick=True)
    assert set(scaling["curves"]) >= {"jobs", "regions", "slots"}
    common.write_result("planner_scaling", scaling)
    for png in ("intensity_windows.png", "savings_vs_window.png", "planner_scaling.png"):
        assert (quick_env / "img" / png).stat().st_size > 1000

    doc = REPO_ROOT / "docs" / "benchmarks.md"
    out = quick_env / "benchmarks.md"
    out.write_text(report.render(doc))
    text = out.read_text()
    for heading in ("## Machine and commands", "## Temporal shifting", "## Spatial + temporal",
                    "## On-site solar", "## Operator at scale", "## Planner scaling"):
        assert heading in text
    assert "BENCH_QUICK=1 run" in text
    assert "5.91%" in text  # the published figure next to ours
    kept = report.planner_speed_section(doc)
    assert kept and kept.strip() in text  # the core engineer's section, verbatim


@research[0]
def test_bound_bench_runs_small_and_the_report_keeps_sections_not_run(quick_env: Path) -> None:
    """The greedy planner never beats the bound; a section whose bench did not run keeps its previous text."""
    import common
    import planner_bound
    import report

    data = planner_bound.run(quick=True)
    assert data["rows"]
    for r in data["rows"]:
        assert r["bound_g"] <= r["oracle_g"] + 1e-6 and r["bound_g"] <= r["forecast_g"] + 1e-6
        assert r["oracle_fraction_of_bound"] is None or r["oracle_fraction_of_bound"] <= 1 + 1e-9
    common.write_result("planner_bound", data)
    previous = quick_env / "previous.md"
    previous.write_text("# Benchmarks\n\n## Operator at scale (real local control plane)\n\nan earlier run: 6.6 s\n\n"
                        "## Forecast policy experiments (by hand)\n\na policy tried: 0.55\n\n"
                        "## Planner speed\n\nthe core's own\n")
    text = report.render(previous)
    assert "## Forecast policy experiments (by hand)\n\na policy tried: 0.55\n" in text  # no bench writes it
    assert report.BOUND_HEADING in text and "Oracle ÷ bound" in text
    assert "an earlier run: 6.6 s" in text  # operator_scale.json is missing: the previous section stays
    assert "## Temporal shifting (Let's Wait Awhile data)\n\nNot run in this invocation." in text  # none before


def test_operator_bench_helpers() -> None:
    from kubeclient import metric_sums
    from stats import hist_quantile, pct

    text = ('# HELP apiserver_request_total x\n'
            'apiserver_request_total{code="201",resource="jobs",subresource="",verb="POST"} 7\n'
            'apiserver_request_total{code="200",resource="jobs",subresource="status",verb="PATCH"} 3\n'
            'apiserver_request_total_other 5\n')
    assert metric_sums(text, "apiserver_request_total", ("verb",)) == {("POST",): 7.0, ("PATCH",): 3.0}
    assert hist_quantile({0.5: 0.0, 1.0: 10.0, float("inf"): 10.0}, 0.5) == pytest.approx(0.75)
    assert pct([3.0, 1.0, 2.0], 0.5) == 2.0


@pytest.mark.research_data("dacf")
def test_forecaster_bench_runs_small_and_reports(quick_env: Path) -> None:
    import common
    import forecaster
    import report

    forecaster.main()
    data = common.read_result("forecaster")
    assert data and len(data["rows"]) == 6
    assert all(r["mape_pct"]["builtin"] < r["mape_pct"]["weekly_profile"] for r in data["rows"])
    section = report.forecaster(data, None)
    assert "| DE |" in section and "Built-in MAPE" in section


@pytest.mark.research_data("vessim")
def test_solar_forecast_bench_runs_small_and_reports(quick_env: Path) -> None:
    import common
    import report
    import solar_forecast

    solar_forecast.main()
    data = common.read_result("solar_forecast")
    assert data and data["rows"]
    assert all(r["clear-sky"]["solar_kwh"] >= r["hold 1 h"]["solar_kwh"] for r in data["rows"])
    assert "| Berlin |" in report.solar_forecast(data)
