"""Validation, weekly-profile fallback, TTL cache with single-flight, retry policy."""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from carbonshift.signals import (
    BadSignalData,
    G_PER_KWH,
    Limits,
    RetryPolicy,
    Series,
    SeriesKind,
    StaleSignal,
    TTLCache,
    check_zone,
    ensure_valid,
    inspect,
    profile_forecast,
    weekly_profile,
)
from carbonshift.signals.retry import parse_retry_after

from signals_support import run

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)  # a Monday
H = timedelta(hours=1)


def hourly(values: list[float], observed: datetime | None = None) -> Series:
    pts = tuple((T0 + i * H, v) for i, v in enumerate(values))
    return Series(points=pts, unit=G_PER_KWH, source="t", observed_at=observed or pts[-1][0])


def codes(series: Series, now: datetime) -> set[str]:
    return {i.code for i in inspect(series, now=now)}


def test_sound_series_has_no_issues() -> None:
    s = hourly([200, 210, 190])
    assert inspect(s, now=T0 + 2 * H) == []
    assert ensure_valid(s, now=T0 + 2 * H) is s


@pytest.mark.parametrize(
    ("values", "code"),
    [
        ([200, -5, 190], "negative"),
        ([200, 250_000, 190], "absurd-magnitude"),  # e.g. g/MWh sent as g/kWh
        ([200, 0, 0, 0, 190], "zero-run"),
        ([200, float("nan"), 190], "not-finite"),
        ([], "empty"),
    ],
)
def test_bad_values_are_reported_and_refused(values: list[float], code: str) -> None:
    s = hourly(values) if values else Series(points=(), unit=G_PER_KWH, source="t", observed_at=T0)
    assert code in codes(s, T0 + 4 * H)
    with pytest.raises(BadSignalData) as err:
        ensure_valid(s, now=T0 + 4 * H)
    assert any(code in issue for issue in err.value.issues)


def test_single_zero_is_not_a_zero_run() -> None:
    assert "zero-run" not in codes(hourly([200, 0, 190]), T0 + 2 * H)


def test_gap_is_reported() -> None:
    s = Series(points=((T0, 1.0), (T0 + 10 * H, 2.0)), unit=G_PER_KWH, source="t", observed_at=T0 + 10 * H)
    assert "gap" in codes(s, T0 + 10 * H)


def test_stale_series_raises_stale_signal() -> None:
    s = hourly([200, 210])
    with pytest.raises(StaleSignal) as err:
        ensure_valid(s, now=T0 + 5 * H, limits=Limits(max_age=2 * H))
    assert err.value.age_seconds == 4 * 3600


def test_wrong_zone_raises() -> None:
    check_zone("DE", "de", "x")
    check_zone("DE", None, "x")
    with pytest.raises(BadSignalData, match="FR"):
        check_zone("DE", "FR", "x")


def test_weekly_profile_is_mean_per_hour_of_week() -> None:
    rng = np.random.default_rng(1)
    base = 100 + 50 * np.sin(np.arange(24 * 7 * 3) * 2 * np.pi / 24)
    s = hourly(list(base + rng.normal(0, 1, base.size)))
    profile = weekly_profile(s)
    assert profile.shape == (168,)
    np.testing.assert_allclose(profile, base[:168], atol=2.0)
    fc = profile_forecast(s, now=T0 + 21 * 24 * H + timedelta(minutes=20), horizon=6 * H)
    assert fc.kind is SeriesKind.PROFILE_FALLBACK
    assert fc.points[0][0] == T0 + 21 * 24 * H
    assert len(fc.points) == 6
    np.testing.assert_allclose(fc.values, base[:6], atol=2.0)


def test_cache_single_flight_and_ttl() -> None:
    clock = [T0]
    cache: TTLCache[int] = TTLCache(timedelta(minutes=5), lambda: clock[0])
    calls = 0

    async def fetch() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return calls

    async def main() -> list[int]:
        first = await asyncio.gather(*(cache.get("k", fetch) for _ in range(20)))
        clock[0] += timedelta(minutes=4)
        again = await cache.get("k", fetch)
        clock[0] += timedelta(minutes=2)
        expired = await cache.get("k", fetch)
        return [*first, again, expired]

    results = run(main())
    assert results[:21] == [1] * 21 and results[21] == 2
    assert calls == 2


def test_cache_does_not_cache_errors_and_shares_them() -> None:
    cache: TTLCache[int] = TTLCache(timedelta(minutes=5), lambda: T0)
    attempts = 0

    async def failing() -> int:
        nonlocal attempts
        attempts += 1
        await asyncio.sleep(0.01)
        raise BadSignalData("nope")

    async def main() -> list[object]:
        return await asyncio.gather(*(cache.get("k", failing) for _ in range(5)), return_exceptions=True)

    results = run(main())
    assert all(isinstance(r, BadSignalData) for r in results) and attempts == 1
    run(main())
    assert attempts == 2 and cache.peek("k") is None


def test_backoff_is_jittered_capped_and_seeded() -> None:
    a = RetryPolicy(base_seconds=1, cap_seconds=8, rng=random.Random(7))
    b = RetryPolicy(base_seconds=1, cap_seconds=8, rng=random.Random(7))
    delays = [a.backoff(n) for n in range(8)]
    assert delays == [b.backoff(n) for n in range(8)]
    assert all(0 <= d <= min(8, 2**n) for n, d in enumerate(delays))
    assert a.delay_for(0, retry_after=3.0) == 3.0
    assert a.delay_for(0, retry_after=10_000) == a.max_retry_after_seconds


def test_parse_retry_after() -> None:
    assert parse_retry_after("12") == 12
    assert parse_retry_after("Mon, 01 Jan 2024 00:01:00 GMT", now=T0) == 60
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None
