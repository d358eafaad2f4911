"""WattTime v3 provider against a loopback replay.

Response shapes follow the WattTime API v3 docs (https://docs.watttime.org/): ``GET /login``
→ ``{"token": …}``; ``GET /v3/forecast`` and ``/v3/historical`` → ``{"data": [{"point_time",
"value"}], "meta": {"region", "signal_type", "units": "lbs_co2_per_mwh", "generated_at", …}}``.
"""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from carbonshift.signals import (
    BadSignalData,
    LBS_PER_MWH_TO_G_PER_KWH,
    RetryPolicy,
    SeriesKind,
    StaleSignal,
    StaticSecretReader,
    build_provider,
)
from signals_support import run

NOW = datetime(2024, 5, 1, 12, 7, tzinfo=timezone.utc)
SECRETS = StaticSecretReader({("carbonshift-system", "wt"): {"username": "alice", "password": "s3cret-pw"}})


def moer(points: int, *, generated: datetime = NOW - timedelta(minutes=2), region: str = "CAISO_NORTH",
         units: str = "lbs_co2_per_mwh", value: float = 1000.0) -> dict[str, Any]:
    start = NOW.replace(minute=5)
    return {
        "data": [{"point_time": (start + timedelta(minutes=5 * i)).isoformat(), "value": value + i} for i in range(points)],
        "meta": {"data_point_period_seconds": 300, "region": region, "warnings": [], "signal_type": "co2_moer",
                 "model": {"date": "2023-03-01"}, "units": units, "generated_at_period_seconds": 300,
                 "generated_at": generated.isoformat()},
    }


def serve(api: Any, body_for: Any = None) -> None:
    api.json("/login", {"token": "wt-token"})

    def forecast(q: dict[str, list[str]], h: dict[str, str]) -> tuple[int, dict[str, str], Any]:
        if h.get("authorization") != "Bearer wt-token":
            return 401, {}, {"error": "bad token"}
        hours = int(q["horizon_hours"][0])
        return 200, {}, (body_for(hours) if body_for else moer(max(1, hours * 12)))

    api.routes["/v3/forecast"] = forecast


def provider(url: str, retry: RetryPolicy, **extra: Any) -> Any:
    return build_provider({"provider": "watttime", "timeoutSeconds": 0.5,
                           "wattTime": {"url": url, "region": "CAISO_NORTH", "credentialsSecretRef": {"name": "wt"}},
                           **extra}, secrets=SECRETS, now=lambda: NOW, retry=retry)


def test_login_then_current_in_g_per_kwh(fake_api: Any, retry: RetryPolicy) -> None:
    serve(fake_api)
    s = run(provider(fake_api.url, retry).current())
    assert s.latest[1] == pytest.approx(1000 * LBS_PER_MWH_TO_G_PER_KWH) and s.unit == "gCO2eq/kWh"
    assert s.observed_at == NOW - timedelta(minutes=2)
    login = fake_api.requests[0]
    assert login[0] == "/login"
    assert login[2]["authorization"] == "Basic " + base64.b64encode(b"alice:s3cret-pw").decode()


def test_forecast_horizon_and_conversion(fake_api: Any, retry: RetryPolicy) -> None:
    serve(fake_api)
    s = run(provider(fake_api.url, retry).forecast(timedelta(hours=2)))
    assert s.kind is SeriesKind.FORECAST and len(s) == 24
    assert fake_api.requests[-1][1]["horizon_hours"] == ["2"]
    assert s.values[1] == pytest.approx(1001 * 0.453592)


def test_expired_token_logs_in_again(fake_api: Any, retry: RetryPolicy) -> None:
    serve(fake_api)
    tokens = iter(["old-token", "wt-token"])
    fake_api.routes["/login"] = lambda q, h: (200, {}, {"token": next(tokens)})
    assert run(provider(fake_api.url, retry).current()).latest[1] > 0
    assert [r[0] for r in fake_api.requests] == ["/login", "/v3/forecast", "/login", "/v3/forecast"]


def test_stale_forecast_generation_raises(fake_api: Any, retry: RetryPolicy) -> None:
    serve(fake_api, lambda hours: moer(max(1, hours * 12), generated=NOW - timedelta(hours=5)))
    with pytest.raises(StaleSignal):
        run(provider(fake_api.url, retry).current())


@pytest.mark.parametrize("body", [
    lambda h: moer(1, region="PJM"),            # answered for another region
    lambda h: moer(1, units="kg_per_furlong"),  # unknown units
    lambda h: {"data": [{"when": "?"}], "meta": {}},
])
def test_bad_data(fake_api: Any, retry: RetryPolicy, body: Any) -> None:
    serve(fake_api, body)
    with pytest.raises(BadSignalData):
        run(provider(fake_api.url, retry).current())
