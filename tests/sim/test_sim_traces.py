"""Trace loading: the real files as they are, mixed resolutions, Electricity Maps CSVs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from carbonshift.sim import data, traces


def test_data_dir_is_next_to_the_repo_and_overridable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(data.ENV_VAR, raising=False)
    assert data.data_dir() == data.repo_root().parent / "shared" / "data"
    monkeypatch.setenv(data.ENV_VAR, str(tmp_path))
    assert data.data_dir() == tmp_path


def test_mixed_resolution_is_averaged_onto_one_step(tmp_path: Path) -> None:
    csv = tmp_path / "x_ci.csv"
    csv.write_text("Time,Carbon Intensity\n2020-01-01 00:00:00,100\n2020-01-01 00:30:00,200\n2020-01-01 01:00:00,300\n"
                   "2020-01-01 01:30:00,400\n2020-01-01 02:00:00,500\n2020-01-01 02:15:00,700\n2020-01-01 02:30:00,100\n")
    trace = traces.load([str(csv)])
    assert trace.regions == ("x",)
    assert trace.step == pd.Timedelta(minutes=30)
    assert trace.frame["x"].tolist() == [100, 200, 300, 400, 600, 100]


def test_named_multi_column_csv(tmp_path: Path) -> None:
    csv = tmp_path / "multi.csv"
    csv.write_text("time,DE,GB\n2020-01-01T00:00Z,1,2\n2020-01-01T01:00Z,3,4\n2020-01-01T02:00Z,5,6\n")
    trace = traces.load([str(csv)])
    assert trace.regions == ("DE", "GB")


@pytest.mark.skipif(not (data.data_dir() / "lets-wait-awhile").exists(), reason="shared data not present")
def test_real_files_load_as_they_are() -> None:
    gb = traces.load([f"gb={data.lets_wait_awhile('gb')}"])
    assert gb.step == pd.Timedelta(minutes=30)
    assert gb.frame.index.is_monotonic_increasing and not gb.frame.isna().any().any()
    both = traces.load([str(data.lets_wait_awhile("ger")), str(data.lets_wait_awhile("gb"))])
    assert both.regions == ("ger", "gb") and both.step == pd.Timedelta(minutes=30)
    em_dir = data.data_dir() / "decarbonization-potential" / "downloaded_carbon_data"
    files = sorted(em_dir.glob("*_2021_hourly.csv"))[:1]
    if files:
        em = traces.load([str(files[0])])
        assert em.step == pd.Timedelta(hours=1) and len(em.frame) > 8000
