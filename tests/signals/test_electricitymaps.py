"""Electricity Maps provider against a loopback replay of the v3 API.

Response shapes follow the Electricity Maps API v3 reference
(https://static.electricitymaps.com/api/docs/index.html): ``/v3/carbon-intensity/latest``,
``/forecast`` and ``/history``.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from carbonshift.signals import (
    BadSignalData,
    GuardedProvider,
    KubernetesSecretReader,
    RetryPolicy,
    SeriesKind,
    SignalConfigError,
    StaleSignal,
    StaticSecretReader,
    build_provider,
    read_secret_key,
    resolve_secrets,
)
from signals_support import run

NOW = datetime(2024, 5, 1, 12, 10, tzinfo=timezone.utc)
NOW_HOUR = NOW.replace(minute=0)
TOKEN = "em-secret-token-value"
SECRETS = StaticSecretReader({("carbonshift-system", "em"): {"token": TOKEN}})


def _iso(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def latest(value: float = 302, at: datetime = NOW_HOUR, zone: str = "DE") -> dict[str, Any]:
    return {"zone": zone, "carbonIntensity": value, "datetime": _iso(at), "updatedAt": _iso(at + timedelta(minutes=5)),
            "createdAt": _iso(at - timedelta(days=3)), "emissionFactorType": "lifecycle", "isEstimated": False,
            "estimationMethod": None}


def forecast_body(zone: str = "DE") -> dict[str, Any]:
    start = NOW.replace(minute=0)
    return {"zone": zone, "forecast": [{"carbonIntensity": 300 + i, "datetime": _iso(start + timedelta(hours=i))}
                                       for i in range(24)],
            "updatedAt": _iso(NOW - timedelta(minutes=20))}


def history_body() -> dict[str, Any]:
    start = NOW.replace(minute=0) - timedelta(hours=24)
    return {"zone": "DE", "history": [dict(latest(200 + 5 * (i % 24), start + timedelta(hours=i))) for i in range(24)]}


def provider(api_url: str, retry: RetryPolicy, **extra: Any) -> GuardedProvider:
    config = {"provider": "electricitymaps", "timeoutSeconds": 0.5,
              "electricityMaps": {"url": f"{api_url}/v3", "zone": "DE",
                                  "tokenSecretRef": {"name": "em", "namespace": "carbonshift-system", "key": "token"}},
              **extra}
    p = build_provider(config, secrets=SECRETS, now=lambda: NOW, retry=retry)
    assert isinstance(p, GuardedProvider)
    return p


def test_current_value_sends_token_and_zone(fake_api: Any, retry: RetryPolicy, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake_api.json("/v3/carbon-intensity/latest", latest())
    p = provider(fake_api.url, retry)
    s = run(p.current())
    assert s.latest == (NOW.replace(minute=0), 302.0) and s.kind is SeriesKind.ACTUAL
    assert s.observed_at == NOW.replace(minute=0) and s.unit == "gCO2eq/kWh"
    _, query, headers = fake_api.requests[0]
    assert query["zone"] == ["DE"] and headers["auth-token"] == TOKEN
    assert TOKEN not in caplog.text and TOKEN not in repr(p)


def test_forecast_within_horizon(fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json("/v3/carbon-intensity/forecast", forecast_body())
    s = run(provider(fake_api.url, retry).forecast(timedelta(hours=6)))
    assert s.kind is SeriesKind.FORECAST and len(s) == 7  # 12:00 (current hour) .. 18:00 exclusive of 18:10+
    assert s.observed_at == NOW - timedelta(minutes=20)


def test_stale_latest_raises(fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json("/v3/carbon-intensity/latest", latest(at=NOW - timedelta(hours=7)))
    with pytest.raises(StaleSignal):
        run(provider(fake_api.url, retry, maxAge="2h").current())


def test_wrong_zone_is_bad_data(fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json("/v3/carbon-intensity/latest", latest(zone="FR"))
    with pytest.raises(BadSignalData, match="FR"):
        run(provider(fake_api.url, retry).current())


def test_absurd_magnitude_is_bad_data(fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json("/v3/carbon-intensity/latest", latest(value=302_000))  # g/MWh by mistake
    with pytest.raises(BadSignalData, match="absurd"):
        run(provider(fake_api.url, retry).current())


def test_not_json_is_bad_data(fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json("/v3/carbon-intensity/latest", b"<html>maintenance</html>")
    with pytest.raises(BadSignalData):
        run(provider(fake_api.url, retry).current())


def test_rate_limit_honours_retry_after(fake_api: Any, retry: RetryPolicy, fake_sleep: Any) -> None:
    fake_api.sequence("/v3/carbon-intensity/latest",
                      [(429, {"Retry-After": "7"}, {"message": "slow down"}), (200, {}, latest())])
    assert run(provider(fake_api.url, retry).current()).latest[1] == 302
    assert fake_sleep.delays == [7.0]


def test_forecast_outage_falls_back_to_builtin_forecast(fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json("/v3/carbon-intensity/forecast", {"error": "boom"}, status=503)
    fake_api.json("/v3/carbon-intensity/history", history_body())
    p = provider(fake_api.url, retry)
    p.profile_history = timedelta(hours=24)  # history endpoint covers the past 24 h
    s = run(p.forecast(timedelta(hours=4)))
    # Hourly from the hour containing now (not on the hour) until now + 4 h: five points.
    assert s.kind is SeriesKind.BUILTIN_FORECAST and len(s) == 5 and s.points[-1][0] + timedelta(hours=1) >= NOW + timedelta(hours=4)
    assert any("fallback because" in n for n in s.notes)


def test_read_secret_key_decodes_and_never_echoes() -> None:
    async def get_secret(namespace: str, name: str) -> dict[str, Any]:  # a Secret as the API returns it
        assert (namespace, name) == ("ops", "em")
        return {"kind": "Secret", "data": {"token": base64.b64encode(TOKEN.encode()).decode()},
                "stringData": {"plain": f" {TOKEN} "}}

    async def broken(namespace: str, name: str) -> dict[str, Any]:
        raise ConnectionError(f"refused while sending {TOKEN}")

    async def scenario() -> None:
        assert await read_secret_key(get_secret, "em", "ops", "token") == TOKEN
        assert await read_secret_key(get_secret, "em", "ops", "plain") == TOKEN
        assert await KubernetesSecretReader(get_secret).read("em", "ops", "token") == TOKEN
        resolved = await resolve_secrets(KubernetesSecretReader(get_secret), [("em", "ops", "token")])
        assert resolved.read("em", "ops", "token") == TOKEN and TOKEN not in repr(resolved)
        with pytest.raises(SignalConfigError) as err:
            await read_secret_key(get_secret, "em", "ops", "missing")
        assert TOKEN not in str(err.value) and "ops/em" in str(err.value) and "missing" in str(err.value)
        with pytest.raises(SignalConfigError) as err:
            await read_secret_key(broken, "em", "ops", "token")
        assert TOKEN not in str(err.value) and "ConnectionError" in str(err.value)

    asyncio.run(scenario())


def test_stale_forecast_raises_and_profile_is_available_on_request(fake_api: Any, retry: RetryPolicy) -> None:
    body = forecast_body()
    body["updatedAt"] = _iso(NOW - timedelta(hours=9))
    fake_api.json("/v3/carbon-intensity/forecast", body)
    fake_api.json("/v3/carbon-intensity/history", history_body())
    p = provider(fake_api.url, retry)
    with pytest.raises(StaleSignal):
        run(p.forecast(timedelta(hours=4)))
    p.profile_history = timedelta(hours=24)
    profile = run(p.profile(timedelta(hours=4)))
    assert profile.kind is SeriesKind.PROFILE_FALLBACK and "requested explicitly" in profile.notes[-1]
