"""The Prometheus provider against a real Prometheus server (see conftest.py).

The server holds five days of the bundled traces (DE, GB: June 2022 replayed onto June 2020) as the
exporter publishes them, backfilled with promtool, a synthetic Kepler counter, and live
scrapes of an accelerated exporter.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pytest

from carbonshift.signals import (
    BadSignalData,
    ProviderUnavailable,
    RetryPolicy,
    SeriesKind,
    SignalConfigError,
    StaleSignal,
    build_energy,
    build_provider,
    load_trace,
    pod_energy_joules,
    resolve_trace_path,
)
from carbonshift.signals.kepler import KEPLER_LEGACY
from carbonshift.signals.prometheus import PrometheusSource, parse_duration
from signals_support import BACKFILL_END, KEPLER_POD, KEPLER_WATTS, run

pytestmark = pytest.mark.prometheus

AT = datetime(2020, 6, 3, 12, 0, tzinfo=timezone.utc)
DE = 'carbonshift_grid_intensity_g_per_kwh{region="de"}'
DE_FORECAST = 'carbonshift_grid_intensity_forecast_g_per_kwh{region="de"}'


def provider(url: str, retry: RetryPolicy, at: datetime = AT, **block: Any) -> Any:
    return build_provider({"provider": "prometheus", "zone": "DE",
                           "prometheus": {"url": url, "query": DE, "forecastQuery": DE_FORECAST, **block}},
                          secrets=None, now=lambda: at, retry=retry)


def trace_value(at: datetime) -> float:
    """The bundled German trace (2022) at ``at``'s date and time, as the exporter's calendar map replays it."""
    trace = load_trace(resolve_trace_path("DE"))
    i = int(np.searchsorted(trace.times, at.replace(year=2022).timestamp(), side="right")) - 1
    return float(trace.values[i])


def test_parse_duration() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("3600") == timedelta(hours=1)
    with pytest.raises(ValueError):
        parse_duration("soon")


def test_current_is_the_real_trace_value(prometheus_server: Any, retry: RetryPolicy) -> None:
    s = run(provider(prometheus_server.url, retry).current())
    assert s.latest == (AT, pytest.approx(trace_value(AT)))
    assert s.observed_at == AT and s.kind is SeriesKind.ACTUAL


def test_forecast_from_horizon_labelled_gauges(prometheus_server: Any, retry: RetryPolicy) -> None:
    s = run(provider(prometheus_server.url, retry).forecast(timedelta(hours=6)))
    assert s.kind is SeriesKind.FORECAST and len(s) == 7
    assert s.points[0][0] == AT and s.points[-1][0] == AT + timedelta(hours=6)
    # The 3h gauge is the mean of the real trace over [AT+3h, AT+4h).
    trace = load_trace(resolve_trace_path("DE"))
    lo, hi = (AT.replace(year=2022) + timedelta(hours=3)).timestamp(), (AT.replace(year=2022) + timedelta(hours=4)).timestamp()
    expected = trace.values[(trace.times >= lo) & (trace.times < hi)].mean()
    assert dict(s.points)[AT + timedelta(hours=3)] == pytest.approx(expected)


def test_forecast_from_future_timestamped_samples(prometheus_server: Any, retry: RetryPolicy) -> None:
    """A forecast metric whose samples carry future timestamps (here: the backfilled actuals)."""
    s = run(provider(prometheus_server.url, retry, forecastQuery=DE).forecast(timedelta(hours=4)))
    assert len(s) == 5 and s.points[2] == (AT + timedelta(hours=2), pytest.approx(trace_value(AT + timedelta(hours=2))))


def test_no_forecast_query_falls_back_to_builtin_forecast(prometheus_server: Any, retry: RetryPolicy) -> None:
    p = provider(prometheus_server.url, retry, at=datetime(2020, 6, 5, 18, tzinfo=timezone.utc), forecastQuery="")
    s = run(p.forecast(timedelta(hours=12)))
    assert s.kind is SeriesKind.BUILTIN_FORECAST and len(s) == 12


def test_stale_after_the_data_stops(prometheus_server: Any, retry: RetryPolicy) -> None:
    late = BACKFILL_END - timedelta(minutes=15) + timedelta(minutes=4)  # last sample + 4 min (< 5-min lookback)
    p = build_provider({"provider": "prometheus", "maxAge": "2m", "prometheus": {"url": prometheus_server.url, "query": DE}},
                       secrets=None, now=lambda: late, retry=retry)
    with pytest.raises(StaleSignal) as err:
        run(p.current())
    assert err.value.age_seconds >= 240


def test_bad_data(prometheus_server: Any, retry: RetryPolicy) -> None:
    with pytest.raises(BadSignalData, match="absurd"):  # wrong units: g/MWh
        run(provider(prometheus_server.url, retry, query=f"{DE} * 1000").current())
    with pytest.raises(BadSignalData, match="exactly one series"):
        run(provider(prometheus_server.url, retry, query="carbonshift_grid_intensity_g_per_kwh").current())
    with pytest.raises(BadSignalData, match="no series"):
        run(provider(prometheus_server.url, retry, query="no_such_metric").current())
    after_end = BACKFILL_END + timedelta(hours=1)  # beyond the lookback: no data at all
    with pytest.raises(BadSignalData, match="lookback"):
        run(provider(prometheus_server.url, retry, at=after_end).current())
    with pytest.raises(SignalConfigError, match="bad query"):
        run(provider(prometheus_server.url, retry, query="sum(").current())


def test_query_errors_are_reported_with_prometheus_own_message(prometheus_server: Any) -> None:
    """Prometheus' JSON error (``errorType``, ``error``) reaches the user, and is not retried."""
    prom = PrometheusSource(prometheus_server.url, now=lambda: AT)
    with pytest.raises(SignalConfigError, match=r"bad query sum\(: HTTP 400 bad_data: .*parse error"):
        run(prom.instant("sum("))
    with pytest.raises(SignalConfigError, match=r"HTTP 422 execution: .*many-to-many matching not allowed"):
        run(prom.instant("carbonshift_grid_intensity_g_per_kwh + on() carbonshift_grid_intensity_g_per_kwh"))
    with pytest.raises(SignalConfigError, match="end timestamp must not be before start time"):
        run(prom.range(DE, AT, AT - timedelta(hours=1), timedelta(minutes=15)))
    with pytest.raises(BadSignalData, match="returned a scalar, expected a vector"):
        run(prom.instant("42"))


def test_range_query_is_aligned_to_whole_seconds(prometheus_server: Any) -> None:
    prom = PrometheusSource(prometheus_server.url, now=lambda: AT)
    ranged = run(prom.range(DE, AT + timedelta(microseconds=300), AT + timedelta(hours=1), timedelta(minutes=15)))
    assert len(ranged) == 1 and [t for t, _ in ranged[0][1]] == [AT + timedelta(minutes=15 * i) for i in range(5)]
    assert ranged[0][1][0][1] == pytest.approx(trace_value(AT))


def test_outage(refused_url: str, retry: RetryPolicy, fake_sleep: Any) -> None:
    with pytest.raises(ProviderUnavailable):
        run(provider(refused_url, retry).current())
    assert len(fake_sleep.delays) >= 2  # value and timestamp() queries each retried


def test_energy_from_backfilled_simulated_site(prometheus_server: Any) -> None:
    energy = build_energy({
        "prometheusUrl": prometheus_server.url,
        "solarPowerQuery": 'carbonshift_solar_power_watts{region="de"}',
        "batteryStateOfChargeQuery": 'carbonshift_battery_state_of_charge_ratio{region="de"} * 100',  # as a percentage
        "batteryCapacityQuery": 'carbonshift_battery_capacity_watt_hours{region="de"}',
        "batteryMaxDischargeWatts": 20000,
    }, now=lambda: AT)
    assert energy is not None
    snap = run(energy.snapshot())
    assert snap.solar_power and snap.solar_power.latest[1] > 1000  # noon in June
    assert snap.battery_state_of_charge and 0.1 <= snap.battery_state_of_charge.latest[1] <= 1.0
    assert "percentage" in snap.battery_state_of_charge.notes[0]
    assert snap.battery_capacity and snap.battery_capacity.latest[1] == 100_000
    assert snap.battery_max_discharge_watts == 20000
    night = run(energy.solar_history(AT - timedelta(hours=14), AT - timedelta(hours=10)))
    assert night.values.max() < 500


def test_pod_energy_from_kepler_counter(prometheus_server: Any) -> None:
    prom = PrometheusSource(prometheus_server.url, now=lambda: AT)
    start = datetime(2020, 6, 2, 1, tzinfo=timezone.utc)
    # The backfilled counter is shaped like Kepler 0.7's (tests/operator/test_measured_energy.py has both lines).
    s = run(pod_energy_joules(prom, *KEPLER_POD, start, start + timedelta(hours=2), kepler=KEPLER_LEGACY))
    assert s.unit == "J" and s.latest[1] == pytest.approx(KEPLER_WATTS * 7200, rel=0.01)
    with pytest.raises(BadSignalData, match="no kepler"):
        run(pod_energy_joules(prom, "batch", "other", start, start + timedelta(hours=2), kepler=KEPLER_LEGACY))


def test_live_scrape_of_the_exporter(prometheus_server: Any, retry: RetryPolicy) -> None:
    """Prometheus scrapes the running exporter; the provider reads it at wall-clock time."""
    def wall() -> datetime:
        return datetime.now(timezone.utc)

    p = build_provider({"provider": "prometheus", "prometheus": {
        "url": prometheus_server.url, "query": 'carbonshift_grid_intensity_g_per_kwh{region="gb"}',
        "forecastQuery": 'carbonshift_grid_intensity_forecast_g_per_kwh{region="gb"}'}}, secrets=None, now=wall,
        retry=retry)
    deadline = time.monotonic() + 30
    while True:
        try:
            current = run(p.current())
            break
        except BadSignalData:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
    assert current.age(wall()) < timedelta(seconds=10)
    forecast = run(p.forecast(timedelta(hours=5)))
    assert forecast.kind is SeriesKind.FORECAST and len(forecast) == 6
