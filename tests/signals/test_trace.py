"""The trace provider on the bundled real traces, the data-folder rule, and the offline demo default (no network)."""

from __future__ import annotations

import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from carbonshift.signals import (
    AnchoredTimeMap,
    CalendarTimeMap,
    SeriesKind,
    SignalConfigError,
    TraceProvider,
    BadSignalData,
    build_provider,
    load_trace,
    resolve_member_trace,
    resolve_trace_path,
    to_slots,
)
from carbonshift.signals import exporter as exp
from signals_support import run

NOW = datetime(2026, 6, 1, 12, 7, tzinfo=timezone.utc)


def test_bundled_traces_are_package_data() -> None:
    for zone in ("DE", "GB", "ES", "NO", "BR", "US-CAL-CISO", "SE", "US-MIDA-PJM", "US-TEX-ERCO", "US-NE-ISNE"):
        trace = load_trace(resolve_trace_path(zone))
        assert trace.step == 3600 and trace.values.size >= 4000 and np.isfinite(trace.values).all(), zone


def test_command_line_paths_are_files(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("Time,Carbon Intensity\n2020-01-01 00:00:00,100\n2020-01-01 01:00:00,200\n")
    assert load_trace(resolve_trace_path(str(tmp_path / "x.csv"))).values.tolist() == [100, 200]


def test_member_trace_is_bundled_or_inside_the_data_folder(tmp_path: Path) -> None:
    data, outside = tmp_path / "data", tmp_path / "outside"
    (data / "sub").mkdir(parents=True)
    outside.mkdir()
    (data / "sub" / "x.csv").write_text("time,carbon_intensity\n2020-01-01T00:00Z,100\n2020-01-01T01:00Z,200\n")
    (outside / "y.csv").write_text("time,carbon_intensity\n2020-01-01T00:00Z,1\n")
    (data / "link.csv").symlink_to(outside / "y.csv")
    assert resolve_member_trace("DE", None).name == "DE.csv.gz"
    assert load_trace(resolve_member_trace("sub/x.csv", data)).values.tolist() == [100, 200]
    assert load_trace(resolve_member_trace(str(data / "sub" / "x.csv"), data)).values.tolist() == [100, 200]
    for path, where in (("sub/x.csv", None), (str(outside / "y.csv"), data), ("../outside/y.csv", data),
                        ("sub/../../outside/y.csv", data), ("link.csv", data), ("/etc/passwd", data), (".", data)):
        with pytest.raises(SignalConfigError, match=r"bundled trace .* or a file inside the operator's data folder"):
            resolve_member_trace(path, where)


@pytest.mark.parametrize("content", [
    "time,carbon_intensity\n2020-01-01T00:00Z,hunter2-SECRET-TOKEN\n",
    "hunter2-SECRET-TOKEN\n",
    "time,carbon_intensity\nhunter2-SECRET-TOKEN,1\n",
    "hunter2-SECRET-TOKEN,carbon_intensity\n2020-01-01T00:00Z,1\n",
])
def test_trace_errors_never_quote_the_file(tmp_path: Path, content: str) -> None:
    (tmp_path / "token.csv").write_text(content)
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfehunter2-SECRET-TOKEN\n")
    for name in ("token.csv", "binary.csv"):
        with pytest.raises((SignalConfigError, BadSignalData)) as info:
            load_trace(resolve_member_trace(name, tmp_path))
        chain = "".join(repr(e) for e in (info.value, info.value.__cause__, info.value.__context__))
        assert "hunter2" not in chain and "SECRET" not in chain


def test_calendar_map_replays_same_day_of_year() -> None:
    p = TraceProvider(load_trace(resolve_trace_path("DE")), now=lambda: NOW)
    current = run(p.current())
    # The bundled German trace at 2022-06-01 12:00 UTC, mapped onto 2026.
    assert current.latest[0] == datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
    assert p.trace_time() == datetime(2022, 6, 1, 12, 7, tzinfo=timezone.utc)
    assert 50 < current.latest[1] < 800 and current.kind is SeriesKind.ACTUAL


def test_anchor_map_and_wraparound() -> None:
    trace = load_trace(resolve_trace_path("ES"))  # exactly one year, 2022
    anchor = AnchoredTimeMap(anchor=datetime(2022, 12, 31, 20, tzinfo=timezone.utc), wall_start=NOW)
    p = TraceProvider(trace, now=lambda: NOW, time_map=anchor)
    fc = run(p.forecast(timedelta(hours=10)))
    assert len(fc) == 10  # runs past the end of 2022 and wraps to 1 January
    assert fc.values[4] == trace.values[0]


def test_forecast_is_future_values_or_seeded_noise() -> None:
    trace = load_trace(resolve_trace_path("DE"))
    exact = TraceProvider(trace, now=lambda: NOW)
    noisy = TraceProvider(trace, now=lambda: NOW, noise=0.1, seed=3)
    noisy_again = TraceProvider(trace, now=lambda: NOW, noise=0.1, seed=3)
    a, b, c = (run(p.forecast(timedelta(hours=24))) for p in (exact, noisy, noisy_again))
    assert a.kind is SeriesKind.FORECAST and len(a) == 25
    assert b.points == c.points and not np.allclose(a.values, b.values)
    assert 0.03 < np.std(b.values / a.values - 1) < 0.2


def test_dacf_trace_uses_the_recorded_day_ahead_forecast() -> None:
    trace = load_trace(resolve_trace_path("SE"))
    assert trace.forecast is not None
    p = TraceProvider(trace, now=lambda: datetime(2021, 9, 1, 6, tzinfo=timezone.utc))
    fc, hist = run(p.forecast(timedelta(hours=24))), run(p.current())
    assert "recorded day-ahead" in fc.notes[0]
    assert fc.values[0] != hist.latest[1]  # forecast and actual differ, as in the real data


def test_history_and_profile_fallback_from_trace() -> None:
    p = build_provider({"provider": "trace", "trace": {"path": "GB"}}, secrets=None, now=lambda: NOW)
    h = run(p.history(NOW - timedelta(days=7), NOW))
    assert h.points[-1][0] <= NOW and len(h) >= 7 * 24
    grid = to_slots(h, NOW - timedelta(days=7), timedelta(hours=1), 7 * 24)
    assert not np.isnan(grid[1:]).any()


def test_unknown_trace_is_a_config_error() -> None:
    with pytest.raises(SignalConfigError):
        build_provider({"provider": "trace", "trace": {"path": "nope/missing.csv"}}, secrets=None, now=lambda: NOW)


def test_demo_default_works_without_any_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise OSError("network disabled in this test")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    p = build_provider({"provider": "trace"}, secrets=None, now=lambda: NOW)  # default: trace of DE
    current, forecast = run(p.current()), run(p.forecast(timedelta(hours=48)))
    grid = to_slots([current, forecast], NOW, timedelta(minutes=30), 96)
    assert not np.isnan(grid).any()
    clock = exp.Clock(NOW)
    regions = exp.build_regions(list(exp.DEFAULT_REGIONS), clock, time_map=CalendarTimeMap(), noise=0.0, seed=0,
                                site_kwargs={})
    names = {name for (name, _), _, _ in exp.samples(regions, forecast_hours=24, forecast_step=timedelta(hours=1),
                                                       speed=1.0)}
    assert "carbonshift_grid_intensity_forecast_g_per_kwh" in names and "carbonshift_solar_power_watts" in names
