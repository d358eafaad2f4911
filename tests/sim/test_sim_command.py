"""``carbonshift simulate`` end to end on a small synthetic trace."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from carbonshift.cli import main

KEYS = {"jobs", "baseline_g", "planned_g", "oracle_g", "savings_pct", "oracle_savings_pct", "fraction_of_oracle", "deadline_misses"}


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    index = pd.date_range("2019-12-25", "2021-01-08", freq="30min")
    hours = np.arange(len(index)) / 2.0
    df = pd.DataFrame({"time": index.strftime("%Y-%m-%d %H:%M:%S"),
                       "de": 300 + 100 * np.sin(2 * math.pi * hours / 24),
                       "gb": 250 + 120 * np.cos(2 * math.pi * hours / 24)})
    path = tmp_path / "trace.csv"
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("extra", [[], ["--interruptible"], ["--spatial", "--capacity", "gb=1"]])
def test_simulate_prints_one_json_object(trace: Path, capsys: pytest.CaptureFixture[str], extra: list[str]) -> None:
    code = main(["simulate", "--trace", str(trace), "--workload", "nightly", "--window", "4", "--whole-window",
                 "--forecast-error", "0.05", *extra])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert KEYS <= result.keys()
    assert result["deadline_misses"] == 0
    assert result["planned_g"] <= result["baseline_g"]
    assert result["oracle_g"] <= result["planned_g"] + 1e-6


def test_bad_trace_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--trace", str(tmp_path / "missing.csv")]) == 2


def test_simulate_needs_no_arguments_and_no_data_beside_the_clone(capsys: pytest.CaptureFixture[str]) -> None:
    """The default is the bundled German trace (Electricity Maps 2022), held on 30-minute slots, replayed as the
    operator runs: re-planned every cycle on the built-in forecaster's 48 h forecast from the trace's own history."""
    assert main(["simulate"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["config"]["regions"] == ["de"] and result["config"]["slot_minutes"] == 30
    assert (result["config"]["mode"], result["config"]["forecast"], result["config"]["horizon_hours"]) == (
        "online", "builtin", 48.0)
    assert result["jobs"] > 3000 and result["unplaced_jobs"] == 0 and result["deadline_misses"] == 0
    assert 0 < result["savings_pct"] <= result["oracle_savings_pct"] + 1e-9


@pytest.mark.parametrize("extra", [["--forecast-error", "0.05"], ["--spatial"], ["--capacity", "gb=1"],
                                   ["--repetitions", "3"], ["--forecast-smoothing", "4"]])
def test_the_papers_options_need_whole_window(trace: Path, capsys: pytest.CaptureFixture[str], extra: list[str]) -> None:
    """Noise, spatial shifting and capacity belong to the papers' one-shot setting: asked for by name, never implied."""
    assert main(["simulate", "--trace", str(trace), "--workload", "nightly", *extra]) == 2
    assert "--whole-window" in capsys.readouterr().err


def test_default_replays_the_operator_and_whole_window_stays_for_the_papers(
        trace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = {}
    for extra in ([], ["--whole-window"]):
        assert main(["simulate", "--trace", f"de={trace}", "--workload", "nightly", "--window", "4", *extra]) == 0
        runs[tuple(extra)] = json.loads(capsys.readouterr().out)
    online, whole = runs[()], runs[("--whole-window",)]
    assert online["config"]["mode"] == "online" and online["config"]["forecast"] == "builtin"
    assert whole["config"]["mode"] == "whole-window"
    assert online["baseline_g"] == pytest.approx(whole["baseline_g"]) and online["jobs"] == whole["jobs"]
    # whole-window without noise plans on the actual series: the oracle; the operator's cycle forecasts
    assert whole["planned_g"] == pytest.approx(whole["oracle_g"])
    assert online["deadline_misses"] == 0 and online["oracle_g"] <= online["planned_g"] <= online["baseline_g"] + 1e-6
