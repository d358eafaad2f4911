"""The trace provider on the real shared traces, and the offline demo default (no network)."""

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
    build_provider,
    data_dir,
    load_trace,
    resolve_trace_path,
    to_slots,
)
from carbonshift.signals import exporter as exp
from signals_support import run

NOW = datetime(2026, 6, 1, 12, 7, tzinfo=timezone.utc)


def test_data_dir_is_next_to_the_repository() -> None:
    assert (data_dir() / "lets-wait-awhile" / "ger_ci.csv").exists()


def test_data_dir_env_override(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("Time,Carbon Intensity\n2020-01-01 00:00:00,100\n2020-01-01 01:00:00,200\n")
    monkeypatch.setenv("CARBONSHIFT_DATA_DIR", str(tmp_path))
    assert resolve_trace_path("x.csv") == tmp_path / "x.csv"
    assert load_trace(resolve_trace_path("x.csv")).values.tolist() == [100, 200]


def test_calendar_map_replays_same_day_of_year() -> None:
    p = TraceProvider(load_trace(resolve_trace_path("DE")), now=lambda: NOW)
    current = run(p.current())
    # ger_ci.csv at 2020-06-01 12:00 UTC, mapped onto 2026.
    assert current.latest[0] == datetime(2026, 6, 1, 12, 0, tzinfo=timezone.utc)
    assert p.trace_time() == datetime(2020, 6, 1, 12, 7, tzinfo=timezone.utc)
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
    assert a.kind is SeriesKind.FORECAST and len(a) == 97
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
    assert h.points[-1][0] <= NOW and len(h) > 7 * 24
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
