"""The learned forecast policy's per-region record (signals/conditioning.py), without a provider:
forecasts and history as a provider would return them, hour after hour."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import numpy as np
import pytest

from carbonshift.signals import GuardedProvider, ProviderUnavailable
from carbonshift.signals.conditioning import WINDOW_DAYS, ForecastConditioner
from carbonshift.signals.series import Series, SeriesKind, to_slots

HOUR = timedelta(hours=1)
T0 = datetime(2022, 6, 1, tzinfo=timezone.utc)


def actual(at: datetime) -> float:
    return 300.0 + 100.0 * np.sin(2 * np.pi * at.hour / 24)


def series(points: list[tuple[datetime, float]], kind: SeriesKind, now: datetime) -> Series:
    return Series(points=tuple(points), unit="gCO2eq/kWh", source="fake:grid", observed_at=now, kind=kind)


def history(now: datetime, days: int = 28) -> Series:
    hour = now.replace(minute=0)
    return series([(hour - i * HOUR, actual(hour - i * HOUR)) for i in range(days * 24, 0, -1)], SeriesKind.ACTUAL, now)


def forecast(now: datetime, bias: float, hours: int = 24, step: timedelta = HOUR,
             kind: SeriesKind = SeriesKind.FORECAST) -> Series:
    first = now.replace(minute=0)
    count = int(hours * HOUR / step)
    return series([(first + i * step, actual(first + i * step) + bias) for i in range(count)], kind, now)


def run_hours(conditioner: ForecastConditioner, hours: int, bias: float, start: datetime = T0) -> datetime:
    now = start
    for _ in range(hours):
        conditioner.observe(series([(now, actual(now))], SeriesKind.ACTUAL, now))
        conditioner.condition(forecast(now, bias), history(now), now, timedelta(hours=48))
        now += HOUR
    return now


def test_a_steady_bias_is_removed_once_a_week_of_forecasts_is_scored() -> None:
    conditioner = ForecastConditioner()
    now = run_hours(conditioner, 9 * 24, bias=40.0)
    result = conditioner.condition(forecast(now, 40.0), history(now), now, timedelta(hours=48))
    truth = np.array([actual(now + k * HOUR) for k in range(24)])
    assert np.allclose(result.planned[:24], truth)  # no error left to price: no premium either
    assert "bias-corrected by up to -40 g/kWh" in (result.reason or "")


def test_after_a_restart_the_providers_errors_are_unknown_and_the_forecast_is_used_as_it_is() -> None:
    now = run_hours(ForecastConditioner(), 9 * 24, bias=40.0)
    fresh = ForecastConditioner()  # the operator restarted: its record is gone
    result = fresh.condition(forecast(now, 40.0), history(now), now, timedelta(hours=48))
    assert np.allclose(result.planned[:24], result.provider[:24])
    assert "not bias-corrected: its errors are not known yet (0 of 7 days" in (result.reason or "")


def test_hours_past_the_providers_horizon_get_a_value_from_history() -> None:
    now = T0 + 10 * HOUR
    result = ForecastConditioner().condition(forecast(now, 0.0, hours=12), history(now), now, timedelta(hours=72))
    assert np.isnan(result.provider[12:]).all()
    assert not np.isnan(result.planned).any()  # 12 h forecast, then the built-in one, then the profile
    late = now.replace(minute=0) + 60 * HOUR
    assert abs(result.planned[60] - actual(late)) < 60  # the daily shape, within the profile's premium
    assert "valued from the built-in forecast" in (result.reason or "")
    assert "valued from the 7-day profile" in (result.reason or "")


def test_a_quarter_hourly_forecast_keeps_its_shape_on_the_grid() -> None:
    conditioner = ForecastConditioner()
    now = run_hours(conditioner, 9 * 24, bias=40.0)
    quarter = timedelta(minutes=15)
    fine = forecast(now, 40.0, step=quarter)
    result = conditioner.condition(fine, history(now), now, timedelta(hours=48))
    raw = to_slots(fine, now, quarter, 8)
    assert np.allclose(result.on_grid(raw, now, quarter), raw - 40.0)


def test_a_weekly_profile_is_not_conditioned() -> None:
    now = T0
    profile = forecast(now, 0.0, kind=SeriesKind.PROFILE_FALLBACK)
    result = ForecastConditioner().condition(profile, history(now), now, timedelta(hours=24))
    assert result.reason is None and np.array_equal(result.planned, result.provider, equal_nan=True)


def test_the_record_keeps_four_weeks() -> None:
    conditioner = ForecastConditioner()
    run_hours(conditioner, (WINDOW_DAYS + 3) * 24, bias=0.0)
    assert conditioner.recorded_issues <= WINDOW_DAYS * 24 + 2


class NoHistory:
    """A provider whose history endpoint is down; counts how often it is asked."""

    source = "fake:nohistory"

    def __init__(self) -> None:
        self.history_calls = 0

    async def current(self) -> Series:
        raise AssertionError("not used")

    async def forecast(self, horizon: timedelta) -> Series:
        raise AssertionError("not used")

    async def history(self, start: datetime, end: datetime) -> Series:
        self.history_calls += 1
        raise ProviderUnavailable("history endpoint down")

    async def aclose(self) -> None:
        return None


def test_a_failing_history_is_asked_for_at_most_once_an_hour() -> None:
    clock = {"now": T0}
    inner = NoHistory()
    guarded = GuardedProvider(inner, now=lambda: clock["now"])  # type: ignore[arg-type]

    async def cycles() -> None:
        for _ in range(24):  # two minutes of 5 s cycles
            with pytest.raises(ProviderUnavailable):
                await guarded.recent_history()
            clock["now"] += timedelta(seconds=5)
        clock["now"] += HOUR
        with pytest.raises(ProviderUnavailable):
            await guarded.recent_history()

    asyncio.run(cycles())
    assert inner.history_calls == 2


def test_the_operator_corrects_a_forecast_as_the_simulators_learned_policy_does() -> None:
    """Same hourly signal, same forecasts: the series the operator plans on over the provider's horizon
    equals the one ``carbonshift simulate``'s ``learned`` policy plans on (bias learned per issue hour)."""
    from carbonshift.sim.forecasts import ForecastSource, Grid
    from carbonshift.sim.policy import LearnedConditioner

    days, horizon = 36, 24
    hours = np.arange(days * 24)
    rng = np.random.default_rng(7)
    truth = 300 + 120 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 15, hours.size)
    grid = Grid(truth, T0.timestamp(), 3600)

    def bias(issue: np.ndarray) -> np.ndarray:
        return np.where(issue % 24 < 12, 60.0, -25.0)  # over-forecasts when issued in the morning

    def issue(t: np.ndarray, n: int) -> np.ndarray:
        target = t[:, None] + np.arange(n)[None, :]
        out = np.full(target.shape, np.nan)
        ok = target < truth.size
        out[ok] = truth[target[ok]]
        return out + bias(t)[:, None]

    source = ForecastSource("provider", grid, horizon, issue)
    t = 34 * 24 + 9
    simulated = LearnedConditioner(source).condition(t, source.issue(t, 48))

    def at(slot: int) -> datetime:
        return T0 + slot * HOUR

    def as_series(values: np.ndarray, first: int, kind: SeriesKind, now: datetime) -> Series:
        return series([(at(first + i), float(v)) for i, v in enumerate(values) if not np.isnan(v)], kind, now)

    conditioner = ForecastConditioner()
    for issue_slot in [t - 24 * d for d in range(28, 0, -1)] + [t]:  # the operator ran at this hour every day
        now = at(issue_slot) + timedelta(minutes=1)
        past = truth[max(0, issue_slot - 28 * 24):issue_slot]
        result = conditioner.condition(as_series(source.issue(issue_slot, horizon), issue_slot, SeriesKind.FORECAST, now),
                                       as_series(past, issue_slot - past.size, SeriesKind.ACTUAL, now),
                                       now, timedelta(hours=48))
    assert "bias-corrected by up to -60 g/kWh" in (result.reason or "")
    assert np.allclose(result.planned[:horizon], simulated[:horizon])
    assert np.allclose(result.planned[:horizon], truth[t:t + horizon])  # the bias was all of its error


@pytest.mark.parametrize("slack_aware", [False, True])
def test_the_operator_values_hours_past_the_forecast_as_the_simulator_does(
        slack_aware: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the built-in forecast's 48 h, the operator's series equals the simulator's learned policy's,
    whichever rule ``core.stopping`` applies there: both value those hours from the same 28 days."""
    from carbonshift.signals import conditioning
    from carbonshift.sim.forecasts import ForecastSource, Grid
    from carbonshift.sim.policy import LearnedConditioner

    monkeypatch.setattr(conditioning, "SLACK_AWARE", slack_aware)
    days, horizon = 36, 24
    rng = np.random.default_rng(3)
    truth = np.repeat(rng.uniform(100, 400, days), 24) + 80 * np.sin(2 * np.pi * np.arange(days * 24) / 24)
    grid = Grid(truth, T0.timestamp(), 3600)

    def issue(t: np.ndarray, n: int) -> np.ndarray:
        target = t[:, None] + np.arange(n)[None, :]
        out = np.full(target.shape, np.nan)
        ok = (target < truth.size) & (target < t[:, None] + horizon)
        out[ok] = truth[target[ok]]
        return out

    source = ForecastSource("provider", grid, horizon, issue)
    t = 34 * 24
    simulated = LearnedConditioner(source, slack_aware=slack_aware).condition(t, source.issue(t, 120))
    now = T0 + t * HOUR
    past = truth[t - 28 * 24:t]
    result = ForecastConditioner().condition(
        series([(now + i * HOUR, float(v)) for i, v in enumerate(truth[t:t + horizon])], SeriesKind.FORECAST, now),
        series([(now - (past.size - i) * HOUR, float(v)) for i, v in enumerate(past)], SeriesKind.ACTUAL, now),
        now, timedelta(hours=120))
    assert result.valued_from == now + 48 * HOUR
    np.testing.assert_allclose(result.planned[48:120], simulated[48:120])
    tail = result.planned[48:120].reshape(3, 24)
    if slack_aware:  # a further day of chances is worth less at every hour
        assert np.all(np.diff(tail, axis=0) <= 1e-9) and np.any(np.diff(tail, axis=0) < 0)
    else:
        np.testing.assert_allclose(np.diff(tail, axis=0), 0.0)
