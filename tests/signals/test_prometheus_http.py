"""The Prometheus HTTP API client against a loopback server: request shape, retries and errors.

Responses follow the documented API (prometheus.io/docs/prometheus/latest/querying/api/):
``{"status": "success", "data": {"resultType": "vector", "result": [...]}}`` or
``{"status": "error", "errorType": ..., "error": ...}``. The answers of a real Prometheus are
tested in test_prometheus.py.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import aiohttp
import pytest

from carbonshift.signals import (
    AuthenticationFailed,
    BadSignalData,
    ProviderUnavailable,
    RateLimited,
    RetryPolicy,
    SignalConfigError,
)
from carbonshift.signals.prometheus import PrometheusSource
from signals_support import run

AT = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
VECTOR = {"status": "success", "data": {"resultType": "vector", "result": [
    {"metric": {"region": "de"}, "value": [AT.timestamp(), "321.5"]}]}}
MATRIX = {"status": "success", "data": {"resultType": "matrix", "result": [
    {"metric": {}, "values": [[AT.timestamp(), "1"], [AT.timestamp() + 60, "NaN"]]}]}}


def source(url: str, retry: RetryPolicy, **kw: Any) -> PrometheusSource:
    prom = PrometheusSource(url, now=lambda: AT, timeout=0.5, **kw)
    prom.retry = retry
    return prom


def test_instant_query_request_and_answer(fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json("/prefix/api/v1/query", VECTOR)
    prom = source(fake_api.url + "/prefix/", retry, headers={"Authorization": "Bearer s3cret"})
    assert run(prom.instant('x{region="de"}')) == [({"region": "de"}, AT, 321.5)]
    _, query, headers = fake_api.requests[0]
    assert query == {"query": ['x{region="de"}'], "time": [str(AT.timestamp())]}
    assert headers["authorization"] == "Bearer s3cret"


def test_range_query_request_and_answer(fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json("/api/v1/query_range", MATRIX)
    ranged = run(source(fake_api.url, retry).range("x", AT + timedelta(seconds=0.4), AT + timedelta(hours=1),
                                                   timedelta(minutes=15)))
    assert ranged[0][0] == {} and ranged[0][1][0] == (AT, 1.0) and len(ranged[0][1]) == 2
    _, query, _ = fake_api.requests[0]
    assert query == {"query": ["x"], "start": [str(int(AT.timestamp()))],
                     "end": [str(int(AT.timestamp()) + 3600)], "step": ["900s"]}


def test_overloaded_prometheus_is_retried(fake_api: Any, retry: RetryPolicy, fake_sleep: Any) -> None:
    busy = {"status": "error", "errorType": "unavailable", "error": "too many concurrent queries"}
    fake_api.sequence("/api/v1/query", [(503, {}, busy), (503, {}, busy), (200, {}, VECTOR)])
    assert run(source(fake_api.url, retry).instant("x"))[0][2] == 321.5
    assert len(fake_api.requests) == 3 and len(fake_sleep.delays) == 2


def test_persistent_server_error(fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json("/api/v1/query", {"status": "error", "errorType": "timeout", "error": "query timed out"}, status=503)
    with pytest.raises(ProviderUnavailable, match="HTTP 503 timeout: query timed out") as err:
        run(source(fake_api.url, retry).instant("x"))
    assert isinstance(err.value.__cause__, aiohttp.ClientResponseError) and len(fake_api.requests) == 3


def test_rate_limit_honours_retry_after(fake_api: Any, retry: RetryPolicy, fake_sleep: Any) -> None:
    fake_api.json("/api/v1/query", {"error": "slow down"}, status=429, headers={"Retry-After": "7"})
    with pytest.raises(RateLimited) as err:
        run(source(fake_api.url, retry).instant("x"))
    assert err.value.retry_after == 7 and fake_sleep.delays == [7.0, 7.0]


@pytest.mark.parametrize("status, error", [(401, AuthenticationFailed), (403, AuthenticationFailed),
                                           (404, ProviderUnavailable)])
def test_client_errors_fail_at_once(status: int, error: type[Exception], fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json("/api/v1/query", {"error": "no"}, status=status)
    with pytest.raises(error, match=f"HTTP {status}"):
        run(source(fake_api.url, retry).instant("x"))
    assert len(fake_api.requests) == 1


def test_bad_query_is_a_configuration_error(fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json("/api/v1/query", {"status": "error", "errorType": "bad_data",
                                    "error": 'invalid parameter "query": 1:5: parse error'}, status=400)
    with pytest.raises(SignalConfigError, match=r'bad query sum\(: HTTP 400 bad_data: invalid parameter "query"'):
        run(source(fake_api.url, retry).instant("sum("))
    assert len(fake_api.requests) == 1


@pytest.mark.parametrize("body, match", [
    (b"<html>login</html>", "did not return JSON"),
    ({"status": "error", "errorType": "internal", "error": "?"}, "unexpected answer"),
    ({"status": "success", "data": {"resultType": "matrix", "result": []}}, "returned a matrix, expected a vector"),
    ({"status": "success", "data": {"resultType": "vector", "result": [{"metric": {}}]}}, "unexpected result"),
])
def test_malformed_answers(body: Any, match: str, fake_api: Any, retry: RetryPolicy) -> None:
    fake_api.json("/api/v1/query", body)
    with pytest.raises(BadSignalData, match=match):
        run(source(fake_api.url, retry).instant("x"))


def test_one_client_per_event_loop_and_aclose(fake_api: Any, retry: RetryPolicy) -> None:
    """``run`` uses a fresh event loop per call; the source must work in each and close cleanly."""
    fake_api.json("/api/v1/query", VECTOR)
    prom = source(fake_api.url, retry)

    async def twice() -> None:
        await prom.instant("x")
        first = prom._session.get()
        await prom.instant("x")
        assert prom._session.get() is first
        await prom.aclose()
        assert first.closed

    run(twice())
    run(twice())
    assert len(fake_api.requests) == 4
