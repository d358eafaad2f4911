"""``carbonshift exporter``: served metrics, the accelerated clock, and the backfill file."""

from __future__ import annotations

import threading
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from carbonshift.cli import main
from carbonshift.signals import exporter as exp
from carbonshift.signals.trace import CalendarTimeMap
from signals_support import free_port

T0 = datetime(2020, 6, 2, 10, tzinfo=timezone.utc)


def test_clock_speed_is_explicit() -> None:
    wall = [100.0]
    clock = exp.Clock(T0, speed=60, wall=lambda: wall[0])
    wall[0] += 10
    assert clock() == T0 + timedelta(minutes=10)
    clock.set(T0)
    assert clock() == T0


def test_served_metrics() -> None:
    clock = exp.Clock(T0)
    regions = exp.build_regions(["de=DE", "es=ES"], clock, time_map=CalendarTimeMap(), noise=0.0, seed=0,
                                site_kwargs={"solar_peak_watts": 10_000.0})
    port = free_port()
    server, _ = exp.serve(regions, host="127.0.0.1", port=port, forecast_hours=3, forecast_step=timedelta(hours=1),
                          speed=1.0)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
    finally:
        server.shutdown()  # type: ignore[attr-defined]
        server.server_close()  # type: ignore[attr-defined]
    assert 'carbonshift_grid_intensity_g_per_kwh{region="de",source="trace:ger_ci.csv",zone="DE"}' in text
    assert 'carbonshift_grid_intensity_forecast_g_per_kwh{horizon="2h",region="es",zone="ES"}' in text
    assert 'carbonshift_solar_power_watts{region="de",simulated="true"}' in text
    assert 'carbonshift_battery_state_of_charge_ratio{region="de",simulated="true"}' in text
    assert "carbonshift_exporter_clock_speed 1.0" in text


def test_simulated_site_is_plausible() -> None:
    clock = exp.Clock(T0)
    (region,) = exp.build_regions(["de=DE"], clock, time_map=CalendarTimeMap(), noise=0.0, seed=0, site_kwargs={})
    noon, night = [], []
    for day in range(3):
        clock.set(T0.replace(hour=11) + timedelta(days=day))
        noon.append(region.site.solar_power_watts())
        clock.set(T0.replace(hour=23) + timedelta(days=day))
        night.append(region.site.solar_power_watts())
        assert 0.1 <= region.site.battery_state_of_charge() <= 1.0
    assert min(noon) > 1000 and max(night) < 500 and "Vessim" in region.site.model


def test_cli_backfill_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "signals.om"
    rc = main(["exporter", "--region", "gb=GB", "--backfill-file", str(out), "--backfill-start", "2020-03-01T00:00:00Z",
               "--backfill-end", "2020-03-01T02:00:00Z", "--backfill-step", "30m", "--forecast-hours", "2"])
    assert rc == 0 and "wrote" in capsys.readouterr().out
    lines = out.read_text().splitlines()
    assert lines[-1] == "# EOF"
    samples = [l for l in lines if l.startswith("carbonshift_grid_intensity_g_per_kwh{")]
    stamps = [float(l.rsplit(" ", 1)[1]) for l in samples]
    assert len(samples) == 4 and stamps == sorted(stamps) and stamps[0] == T0.replace(month=3, day=1, hour=0).timestamp()


def test_cli_serves_until_duration() -> None:
    port = free_port()
    fetched: list[str] = []

    def scrape() -> None:
        for _ in range(50):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                    fetched.append(resp.read().decode())
                return
            except OSError:
                threading.Event().wait(0.05)

    thread = threading.Thread(target=scrape)
    thread.start()
    assert main(["exporter", "--port", str(port), "--speed", "3600", "--duration", "1.5", "--forecast-hours", "2"]) == 0
    thread.join(timeout=10)
    assert fetched and "carbonshift_exporter_clock_speed 3600.0" in fetched[0]


def test_bad_speed_is_refused() -> None:
    assert main(["exporter", "--speed", "0"]) == 2
