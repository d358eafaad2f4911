"""Carbon Aware SDK WebAPI provider against a loopback replay.

Response shapes follow the SDK's WebAPI docs (Green-Software-Foundation/carbon-aware-sdk,
casdk-docs/docs/overview/webapi.md): ``GET /emissions/bylocation`` → ``[{"location", "time",
"rating", "duration"}]``; ``GET /emissions/forecasts/current`` → ``[{"generatedAt",
"requestedAt", "location", "dataStartAt", "dataEndAt", "windowSize", "optimalDataPoints",
"forecastData": [{"location", "timestamp", "duration", "value"}]}]``.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from carbonshift.signals import BadSignalData, RetryPolicy, SeriesKind, StaleSignal, build_provider
from signals_support import run

NOW = datetime(2024, 5, 1, 12, 10, tzinfo=timezone.utc)


def emission(t: datetime, rating: float, location: str = "eastus") -> dict[str, Any]:
    return {"location": location, "time": t.isoformat(), "rating": rating, "duration": "00:05:00"}


def forecast_body(generated: datetime = NOW - timedelta(minutes=3), location: str = "eastus") -> list[dict[str, Any]]:
    data = [{"location": location, "timestamp": (NOW + timedelta(minutes=5 * i)).isoformat(), "duration": 5,
             "value": 400 - i} for i in range(36)]
    return [{"generatedAt": generated.isoformat(), "requestedAt": NOW.isoformat(), "location": location,
             "dataStartAt": NOW.isoformat(), "dataEndAt": (NOW + timedelta(hours=3)).isoformat(), "windowSize": 0,
             "optimalDataPoints": [data[-1]], "forecastData": data}]


def provider(url: str, retry: RetryPolicy) -> Any:
    return build_provider({"provider": "carbon-aware-sdk", "timeoutSeconds": 0.5,
                           "carbonAwareSdk": {"url": url, "location": "eastus"}},
                          secrets=None, now=lambda: NOW, retry=retry)


def test_current_is_latest_rating(fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json("/emissions/bylocation", [emission(NOW - timedelta(minutes=m), 300 + m) for m in (5, 10, 15)])
    s = run(provider(fake_api.url, retry).current())
    assert s.latest == (NOW - timedelta(minutes=5), 305.0)
    assert fake_api.requests[0][1]["location"] == ["eastus"] and "toTime" in fake_api.requests[0][1]


def test_forecast(fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json("/emissions/forecasts/current", forecast_body())
    s = run(provider(fake_api.url, retry).forecast(timedelta(hours=3)))
    assert s.kind is SeriesKind.FORECAST and len(s) == 36 and s.observed_at == NOW - timedelta(minutes=3)


def test_stale_current_raises(fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json("/emissions/bylocation", [emission(NOW - timedelta(hours=6), 300)])
    with pytest.raises(StaleSignal):
        run(provider(fake_api.url, retry).current())


def test_wrong_location_is_bad_data(fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json("/emissions/forecasts/current", forecast_body(location="westus"))
    p = provider(fake_api.url, retry)
    p.profile_fallback = False
    with pytest.raises(BadSignalData, match="westus"):
        run(p.forecast(timedelta(hours=3)))


def test_zeros_for_hours_are_bad_data(fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json("/emissions/bylocation", [emission(NOW - timedelta(minutes=5 * i), 0.0) for i in range(30)])
    with pytest.raises(BadSignalData, match="zero"):
        run(provider(fake_api.url, retry).current())
