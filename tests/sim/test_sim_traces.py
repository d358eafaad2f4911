"""Trace loading: the real files as they are, mixed resolutions, Electricity Maps CSVs."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from carbonshift.signals.tracedata import RESEARCH_DATA_ENV, research_data_dir
from carbonshift.sim import traces

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_research_data_is_next_to_the_repo_and_overridable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv(RESEARCH_DATA_ENV, raising=False)
    assert research_data_dir() == REPO_ROOT.parent / "shared" / "data"
    monkeypatch.setenv(RESEARCH_DATA_ENV, str(tmp_path))
    assert research_data_dir() == tmp_path


def test_bundled_traces_load_by_name() -> None:
    both = traces.load(["DE", "gb=GB"])
    assert both.regions == ("DE", "gb") and both.step == pd.Timedelta(hours=1)
    assert len(both.frame) == 8760 and both.frame.index[0] == pd.Timestamp("2022-01-01", tz="UTC")
    se = traces.load(["SE"])  # DACF: the recorded forecast column is not a region
    assert se.regions == ("SE",)


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


@pytest.mark.research_data("lets-wait-awhile")
def test_real_files_load_as_they_are() -> None:
    lwa = research_data_dir() / "lets-wait-awhile"
    gb = traces.load([f"gb={lwa / 'gb_ci.csv'}"])
    assert gb.step == pd.Timedelta(minutes=30)
    assert gb.frame.index.is_monotonic_increasing and not gb.frame.isna().any().any()
    both = traces.load([str(lwa / "ger_ci.csv"), str(lwa / "gb_ci.csv")])
    assert both.regions == ("ger", "gb") and both.step == pd.Timedelta(minutes=30)


@pytest.mark.research_data("decarbonization-potential")
def test_an_hourly_electricity_maps_year_loads() -> None:
    em = traces.load([str(research_data_dir() / "decarbonization-potential" / "downloaded_carbon_data" / "ES_2021_hourly.csv")])
    assert em.step == pd.Timedelta(hours=1) and len(em.frame) > 8000


def test_an_hourly_trace_is_held_not_interpolated_on_finer_slots(tmp_path: Path) -> None:
    csv = tmp_path / "h.csv"
    csv.write_text("time,carbon_intensity\n2022-01-01T00:00Z,100\n2022-01-01T01:00Z,300\n2022-01-01T02:00Z,200\n")
    trace = traces.load([f"h={csv}"], max_step=pd.Timedelta(minutes=30))
    assert trace.step == pd.Timedelta(minutes=30)
    assert trace.frame["h"].tolist() == [100, 100, 300, 300, 200]
