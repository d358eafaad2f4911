"""GB Carbon Intensity API provider (national and regional) against a loopback replay.

Response shapes follow the API reference (https://carbon-intensity.github.io/api-definitions/):
``/intensity`` → ``{"data": [{"from", "to", "intensity": {"forecast", "actual", "index"}}]}``;
``/regional/regionid/{id}`` → ``{"data": [{"regionid", "dnoregion", "shortname", "data": [...]}]}``;
``/regional/intensity/{from}/fw48h/regionid/{id}`` → ``{"data": {"regionid", …, "data": [...]}}``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from carbonshift.signals import BadSignalData, ProviderUnavailable, RetryPolicy, SeriesKind, StaleSignal, build_provider
from signals_support import run

NOW = datetime(2024, 5, 1, 12, 10, tzinfo=timezone.utc)
HALF = timedelta(minutes=30)


def _z(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%MZ")


def period(start: datetime, forecast: float, actual: float | None = None, regional: bool = False) -> dict[str, Any]:
    p: dict[str, Any] = {"from": _z(start), "to": _z(start + HALF),
                         "intensity": {"forecast": forecast, "index": "moderate"}}
    if regional:
        p["generationmix"] = [{"fuel": "gas", "perc": 41.2}, {"fuel": "wind", "perc": 30.1}]
    else:
        p["intensity"]["actual"] = actual
    return p


def provider(url: str, retry: RetryPolicy, region: int | None = None) -> Any:
    block: dict[str, Any] = {"url": url}
    if region is not None:
        block["regionId"] = region
    return build_provider({"provider": "gb-carbon-intensity", "timeoutSeconds": 0.5, "gbCarbonIntensity": block},
                          secrets=None, now=lambda: NOW, retry=retry)


def test_national_current_prefers_actual(fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json("/intensity", {"data": [period(NOW.replace(minute=0), 180, 175)]})
    s = run(provider(fake_api.url, retry).current())
    assert s.latest == (NOW.replace(minute=0), 175.0) and s.notes == ()


def test_national_forecast_48h(fake_api: Any, retry: RetryPolicy) -> None:
    start = NOW.replace(minute=0)
    fake_api.json(f"/intensity/{_z(NOW)}/fw48h", {"data": [period(start + i * HALF, 150 + i) for i in range(96)]})
    s = run(provider(fake_api.url, retry).forecast(timedelta(hours=6)))
    assert s.kind is SeriesKind.FORECAST and len(s) == 13 and s.values[0] == 150


def test_regional_current_and_forecast(fake_api: Any, retry: RetryPolicy) -> None:
    start = NOW.replace(minute=0)
    region = {"regionid": 13, "dnoregion": "UKPN London", "shortname": "London"}
    fake_api.json("/regional/regionid/13", {"data": [{**region, "data": [period(start, 120, regional=True)]}]})
    fake_api.json(f"/regional/intensity/{_z(NOW)}/fw48h/regionid/13",
                  {"data": {**region, "data": [period(start + i * HALF, 100 + i, regional=True) for i in range(96)]}})
    p = provider(fake_api.url, retry, region=13)
    current = run(p.current())
    assert current.latest[1] == 120 and current.zone == "GB-region-13" and "estimate" in current.notes[0]
    assert len(run(p.forecast(timedelta(hours=2)))) == 5


def test_stale_period_raises(fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json("/intensity", {"data": [period(NOW - timedelta(hours=5), 180, 175)]})
    with pytest.raises(StaleSignal):
        run(provider(fake_api.url, retry).current())


def test_wrong_region_is_bad_data(fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json("/regional/regionid/13", {"data": [{"regionid": 1, "shortname": "North Scotland",
                                                      "data": [period(NOW, 20, regional=True)]}]})
    with pytest.raises(BadSignalData, match="zone"):
        run(provider(fake_api.url, retry, region=13).current())


def test_negative_forecast_is_bad_data(fake_api: Any, retry: RetryPolicy) -> None:
    start = NOW.replace(minute=0)
    fake_api.json(f"/intensity/{_z(NOW)}/fw48h", {"data": [period(start + i * HALF, -10.0) for i in range(4)]})
    p = provider(fake_api.url, retry)
    p.profile_fallback = False
    with pytest.raises(BadSignalData, match="negative"):
        run(p.forecast(timedelta(hours=2)))


def test_bad_forecast_and_no_history_is_unavailable(fake_api: Any, retry: RetryPolicy) -> None:
    start = NOW.replace(minute=0)
    fake_api.json(f"/intensity/{_z(NOW)}/fw48h", {"data": [period(start + i * HALF, -10.0) for i in range(4)]})
    with pytest.raises(ProviderUnavailable, match="no history to forecast from") as err:
        run(provider(fake_api.url, retry).forecast(timedelta(hours=2)))
    assert "negative" in str(err.value)
