"""``carbonshift exporter``: served metrics, the accelerated clock, and the backfill file."""

from __future__ import annotations

import threading
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from carbonshift.cli import main
from carbonshift.signals import exporter as exp
from carbonshift.signals.simsite import SOLCAST_FILE
from carbonshift.signals.trace import AnchoredTimeMap, CalendarTimeMap
from carbonshift.signals.tracedata import research_data_dir
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
    assert 'carbonshift_grid_intensity_g_per_kwh{region="de",source="trace:DE.csv.gz",zone="DE"}' in text
    assert 'carbonshift_grid_intensity_forecast_g_per_kwh{horizon="2h",region="es",zone="ES"}' in text
    assert 'carbonshift_solar_power_watts{region="de",simulated="true"}' in text
    assert 'carbonshift_battery_state_of_charge_ratio{region="de",simulated="true"}' in text
    assert "carbonshift_exporter_clock_speed 1.0" in text


@pytest.mark.parametrize("solar_trace", [None, pytest.param("vessim", marks=pytest.mark.research_data("vessim"))])
def test_simulated_site_is_plausible(solar_trace: str | None) -> None:
    clock = exp.Clock(T0)
    site = {"solar_trace": research_data_dir() / SOLCAST_FILE} if solar_trace else {}
    (region,) = exp.build_regions(["de=DE"], clock, time_map=CalendarTimeMap(), noise=0.0, seed=0, site_kwargs=site)
    noon, night = [], []
    for day in range(3):
        clock.set(T0.replace(hour=11) + timedelta(days=day))
        noon.append(region.site.solar_power_watts())
        clock.set(T0.replace(hour=23) + timedelta(days=day))
        night.append(region.site.solar_power_watts())
        assert 0.1 <= region.site.battery_state_of_charge() <= 1.0
    assert min(noon) > 1000 and max(night) < 500
    assert ("solcast" in region.site.model) if solar_trace else ("bell" in region.site.model)


def test_an_anchored_replay_is_the_same_at_any_hour_of_the_day() -> None:
    """`make demo` pins its story to one trace moment: what is served must not depend on the wall clock."""
    anchor = datetime(2022, 9, 30, 19, tzinfo=timezone.utc)
    served = []
    for wall_hour in (0, 7, 12, 19):
        start = T0.replace(hour=wall_hour)
        clock = exp.Clock(start)
        clock.set(start)  # no wall time passes between two of these readings
        regions = exp.build_regions(["eu-de=DE", "eu-gb=GB"], clock, time_map=AnchoredTimeMap(anchor, start),
                                    noise=0.0, seed=0, site_kwargs={"solar_peak_watts": 4000.0},
                                    site_clock=lambda: anchor + (clock() - start))
        served.append(sorted((name, sorted(labels.items()), value) for (name, _), labels, value in exp.samples(
            regions, forecast_hours=6, forecast_step=timedelta(hours=1), speed=1.0)
            if name != exp.TRACE_TIME[0]))
    assert all(s == served[0] for s in served[1:])
    solar = [v for name, labels, v in served[0] if name == exp.SOLAR[0]]
    assert solar == [0.0, 0.0]  # 19:00 UTC at the end of September: no sun, whatever the wall clock says


def test_cli_missing_trace_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["exporter", "--region", f"eu-de={tmp_path / 'missing.csv'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "missing.csv" in err and "Traceback" not in err
    assert main(["exporter", "--region", "nonsense"]) == 2


def test_cli_backfill_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "signals.om"
    rc = main(["exporter", "--region", "gb=GB", "--backfill-file", str(out), "--backfill-start", "2022-03-01T00:00:00Z",
               "--backfill-end", "2022-03-01T02:00:00Z", "--backfill-step", "30m", "--forecast-hours", "2"])
    assert rc == 0 and "wrote" in capsys.readouterr().out
    lines = out.read_text().splitlines()
    assert lines[-1] == "# EOF"
    samples = [line for line in lines if line.startswith("carbonshift_grid_intensity_g_per_kwh{")]
    stamps = [float(line.rsplit(" ", 1)[1]) for line in samples]
    assert len(samples) == 4 and stamps == sorted(stamps) and stamps[0] == datetime(2022, 3, 1, tzinfo=timezone.utc).timestamp()


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
