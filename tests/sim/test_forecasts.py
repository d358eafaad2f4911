"""Forecast sources issue only what was known at issue time; ``simulate --forecast`` end to end."""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from carbonshift.cli import main
from carbonshift.sim import forecasts

DAY = 48  # 30-minute slots


def _grid(values: np.ndarray) -> forecasts.Grid:
    return forecasts.Grid(values, datetime(2021, 7, 1, tzinfo=timezone.utc).timestamp(), 1800)


@pytest.mark.parametrize("name", ["persistence", "yesterday", "week-mean", "builtin"])
def test_history_sources_never_see_the_future(name: str) -> None:
    rng = np.random.default_rng(1)
    values = 200 + 50 * rng.standard_normal(20 * DAY)
    t = 15 * DAY + 7
    before = forecasts.make_source(name, _grid(values), horizon_slots=96).issue(t, 96)
    changed = values.copy()
    changed[t:] += 1000.0  # the future, including the slot being issued
    after = forecasts.make_source(name, _grid(changed), horizon_slots=96).issue(t, 96)
    np.testing.assert_array_equal(before, after)
    assert not np.isnan(before).any()


def test_history_sources_stop_at_their_horizon() -> None:
    values = np.arange(20 * DAY, dtype=float)
    issued = forecasts.make_source("yesterday", _grid(values), horizon_slots=96).issue(10 * DAY, 120)
    assert not np.isnan(issued[:96]).any() and np.isnan(issued[96:]).all()
    # same time of day on the last known day, tiled
    assert issued[0] == values[9 * DAY] and issued[DAY] == values[9 * DAY]


def test_day_ahead_is_known_through_the_next_day_only_once_published() -> None:
    values = np.arange(10 * DAY, dtype=float)
    source = forecasts.day_ahead_source(_grid(values), values + 0.5)
    morning = source.issue(3 * DAY + 23, 4 * DAY)  # 11:30 UTC: tomorrow not published yet
    assert not np.isnan(morning[: DAY - 23]).any() and np.isnan(morning[DAY - 23:]).all()
    noon = source.issue(3 * DAY + 24, 4 * DAY)  # 12:00 UTC: through the end of tomorrow
    assert not np.isnan(noon[: 2 * DAY - 24]).any() and np.isnan(noon[2 * DAY - 24:]).all()
    assert noon[0] == values[3 * DAY + 24] + 0.5
    whole = forecasts.day_ahead_source(_grid(values), values + 0.5, whole_window=True).issue(3 * DAY, 4 * DAY)
    assert not np.isnan(whole).any()


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    index = pd.date_range("2020-12-01", "2021-02-01", freq="60min")
    hours = np.arange(len(index), dtype=float)
    rng = np.random.default_rng(0)
    ci = 300 + 100 * np.sin(2 * math.pi * hours / 24) + 20 * rng.standard_normal(len(index))
    df = pd.DataFrame({"time": index.strftime("%Y-%m-%dT%H:%M:%SZ"), "carbon_intensity": ci,
                       "carbon_from_src_forecasts": ci + 15 * rng.standard_normal(len(index))})
    path = tmp_path / "zone.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("forecast", "mode"), [("dacf", []), ("week-mean", ["--forecast-policy", "none"]),
                                              ("dacf", ["--forecast-policy", "backtested"]),
                                              ("noise:5", ["--whole-window"]), ("actual", ["--whole-window"])])
def test_simulate_with_a_forecast_never_misses_and_scores_on_actuals(
        trace: Path, capsys: pytest.CaptureFixture[str], forecast: str, mode: list[str]) -> None:
    code = main(["simulate", "--trace", f"zone={trace}", "--workload", "nightly", "--window", "4", "--year", "2021",
                 "--forecast", forecast, *mode])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["deadline_misses"] == 0 and result["jobs"] > 20
    assert result["oracle_g"] <= result["planned_g"] + 1e-6
    assert result["config"]["forecast"] == forecast
    assert result["config"]["mode"] == ("whole-window" if mode == ["--whole-window"] else "online")
    if forecast == "actual" and mode == ["--whole-window"]:
        assert result["planned_g"] == pytest.approx(result["oracle_g"])


@pytest.mark.parametrize("policy", ["learned", "backtested", "none"])
def test_persistence_is_not_worse_than_not_shifting(trace: Path, capsys: pytest.CaptureFixture[str], policy: str) -> None:
    """A flat forecast says nothing: nightly jobs stay at their preferred 01:00 start, the baseline's."""
    assert main(["simulate", "--trace", f"zone={trace}", "--workload", "nightly", "--window", "4", "--year", "2021",
                 "--forecast", "persistence", "--forecast-policy", policy]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["planned_g"] <= result["baseline_g"] + 1e-6
    if policy == "none":
        assert result["planned_g"] == pytest.approx(result["baseline_g"])


def test_a_bad_forecast_is_reported(trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--trace", str(trace), "--forecast", "noise:abc"]) == 2
    assert main(["simulate", "--trace", "DE", "--forecast", "dacf"]) == 2  # no day-ahead column in it


@pytest.mark.research_data("dacf")
def test_dacf_whole_window_reproduces_the_issue_baseline() -> None:
    """Germany ML jobs planned once on DACF's column (the papers' setting): 0.955 of the oracle."""
    from carbonshift.signals.tracedata import research_data_dir
    from carbonshift.sim import online, workloads

    path = research_data_dir() / "dacf" / "data" / "DE" / "DE_carbon_from_src_prod_forecasts_direct.csv"
    trace, dacf = forecasts.read_dacf(str(path), "DE", max_step=pd.Timedelta(minutes=30))
    grid = forecasts.Grid(trace.frame["DE"].to_numpy(), trace.frame.index[0].timestamp(), 1800)
    result = online.whole_window(trace, workloads.ml(year=2021), online.Setup(region="DE"),
                                 forecasts.day_ahead_source(grid, dacf, whole_window=True))
    assert result["jobs"] == 1651 and result["deadline_misses"] == 0
    assert result["fraction_of_oracle"] == pytest.approx(0.955, abs=0.002)


def test_the_simulators_gain_spread_is_the_cores_on_the_same_past_issues() -> None:
    """``learned-relative``'s per-pivot spread (vectorised over the trace) equals ``core.uncertainty.
    relative_spread`` of the issues an operator would have scored by then: same time of day, the
    pivot's and the lead's targets measured, the last 28 days."""
    from carbonshift.core.uncertainty import relative_spread
    from carbonshift.sim.policy import _Errors

    rng = np.random.default_rng(5)
    hours = 40 * 24
    truth = 300 + 80 * np.sin(2 * np.pi * np.arange(hours) / 24) + rng.normal(0, 10, hours)
    level = rng.normal(0, 30, hours)  # each issue off by a level common to its hours, and by hourly noise
    noise = rng.normal(0, 12, (hours, 24))

    def issue(t: np.ndarray, n: int) -> np.ndarray:
        target = t[:, None] + np.arange(n)[None, :]
        out = np.full(target.shape, np.nan)
        ok = target < hours
        out[ok] = truth[target[ok]]
        return out + level[t][:, None] + noise[t, :n]

    source = forecasts.ForecastSource("f", forecasts.Grid(truth, 0.0, 3600), 24, issue)
    errors = _Errors(source, 24, 28 * 24, by_time_of_day=True)
    t, pivot = 38 * 24 + 5, 3
    rows = t - 24 * np.arange(1, 29)
    expected = relative_spread(issue(rows, 24) - truth[rows[:, None] + np.arange(24)[None, :]], pivot, min_samples=7)
    np.testing.assert_allclose(errors.relative(t, 24, pivot, 1), expected)
    assert expected[pivot] == 0 and np.all(expected[np.arange(24) != pivot] < 20)  # ~12 sqrt 2: the level cancels
