"""Every HTTP provider under outage: connection refused, HTTP 500, and timeouts.

Each must raise ``ProviderUnavailable`` (translated once, with the aiohttp error as cause)
after the retry policy's attempts, with jittered backoff between them.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest

from carbonshift.signals import ProviderUnavailable, RateLimited, RetryPolicy, StaticSecretReader, build_provider
from signals_support import run

NOW = datetime(2024, 5, 1, 12, 10, tzinfo=timezone.utc)
SECRETS = StaticSecretReader({("carbonshift-system", "s"): {"token": "t", "username": "u", "password": "p"}})

CONFIGS: dict[str, tuple[dict[str, Any], str]] = {
    # provider: (carbonSignal with URL placeholder, path of the "current" request)
    "electricitymaps": ({"provider": "electricitymaps", "electricityMaps": {
        "url": "{url}/v3", "zone": "DE", "tokenSecretRef": {"name": "s"}}}, "/v3/carbon-intensity/latest"),
    "watttime": ({"provider": "watttime", "wattTime": {
        "url": "{url}", "region": "CAISO_NORTH", "credentialsSecretRef": {"name": "s"}}}, "/login"),
    "gb-carbon-intensity": ({"provider": "gb-carbon-intensity", "gbCarbonIntensity": {"url": "{url}"}}, "/intensity"),
    "carbon-aware-sdk": ({"provider": "carbon-aware-sdk", "carbonAwareSdk": {
        "url": "{url}", "location": "eastus"}}, "/emissions/bylocation"),
}


def build(name: str, url: str, retry: RetryPolicy) -> Any:
    config, _ = CONFIGS[name]
    block_key = next(k for k in config if k != "provider")
    block = {k: (v.format(url=url) if isinstance(v, str) else v) for k, v in config[block_key].items()}
    return build_provider({**config, block_key: block, "timeoutSeconds": 0.2}, secrets=SECRETS, now=lambda: NOW,
                          retry=retry)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_connection_refused(name: str, refused_url: str, retry: RetryPolicy, fake_sleep: Any) -> None:
    with pytest.raises(ProviderUnavailable) as err:
        run(build(name, refused_url, retry).current())
    assert isinstance(err.value.__cause__, aiohttp.ClientConnectorError)
    assert len(fake_sleep.delays) == 2 and all(0 <= d <= 1.0 for d in fake_sleep.delays)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_server_error(name: str, fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json(CONFIGS[name][1], {"error": "internal"}, status=500)
    with pytest.raises(ProviderUnavailable, match="500"):
        run(build(name, fake_api.url, retry).current())
    assert len(fake_api.requests) == 3


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_timeout(name: str, fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json(CONFIGS[name][1], {})
    fake_api.delay = 0.4
    with pytest.raises(ProviderUnavailable) as err:
        run(build(name, fake_api.url, retry).current())
    assert isinstance(err.value.__cause__, TimeoutError)


def test_persistent_rate_limit(fake_api: Any, retry: RetryPolicy, fake_sleep: Any) -> None:
    fake_api.json("/intensity", {"error": "too many"}, status=429, headers={"Retry-After": "30"})
    with pytest.raises(RateLimited) as err:
        run(build("gb-carbon-intensity", fake_api.url, retry).current())
    assert err.value.retry_after == 30 and fake_sleep.delays == [30.0, 30.0]


def test_profile_fallback_after_outage_uses_last_good_history(fake_api: Any, retry: RetryPolicy) -> None:
    """The forecast is down and so is history now, but history fetched earlier still serves."""
    start = NOW - timedelta(days=14)
    periods = [{"from": (start + timedelta(minutes=30 * i)).strftime("%Y-%m-%dT%H:%MZ"),
                "to": (start + timedelta(minutes=30 * (i + 1))).strftime("%Y-%m-%dT%H:%MZ"),
                "intensity": {"forecast": 100 + (i % 48), "actual": 100 + (i % 48), "index": "low"}}
               for i in range(14 * 48)]
    fake_api.routes.clear()
    p = build("gb-carbon-intensity", fake_api.url, retry)
    p.profile_history = timedelta(days=14)
    fake_api.routes["/intensity/" + start.strftime("%Y-%m-%dT%H:%MZ") + "/" + NOW.strftime("%Y-%m-%dT%H:%MZ")] = (
        lambda q, h: (200, {}, {"data": periods}))
    first = run(p.forecast(timedelta(hours=3)))  # forecast route missing (404) -> built-in forecast from history
    assert first.kind.value == "builtin-forecast"
    fake_api.routes.clear()
    p._cache.invalidate()
    p._history_cache._values = {k: (NOW - timedelta(seconds=1), v) for k, (_, v) in p._history_cache._values.items()}
    again = run(p.forecast(timedelta(hours=3)))
    assert again.points == first.points
