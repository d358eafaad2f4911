"""Valuing the slots past a forecast's horizon as optimal stopping: the more daily chances a job has
left before its deadline, the lower the price it holds out for; with its deadline inside the
horizon nothing past it counts."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonshift.core import Job, RegionSignals, plan_job
from carbonshift.core.stopping import continuation_values, daily_profile, fill_beyond_horizon

T0 = datetime(2021, 7, 1, tzinfo=timezone.utc)
SLOT = timedelta(hours=1)
DAY = 24


def _plan(values: np.ndarray, hours: float, deadline_h: float) -> object:
    job = Job(id="j", submit_at=T0, duration=timedelta(hours=hours), deadline=T0 + timedelta(hours=deadline_h),
              power_w=1000.0)
    return plan_job(job, [RegionSignals(region="r", start=T0, slot=SLOT, intensity_g_per_kwh=values)])


def _forecast(known: np.ndarray, total: int) -> np.ndarray:
    out = np.full(total, np.nan)
    out[:known.shape[0]] = known
    return out


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 800), st.just(float("nan"))), min_size=1, max_size=10 * DAY),
       st.integers(1, 6))
def test_more_chances_never_raise_a_slots_value(history: list[float], chances: int) -> None:
    values = continuation_values(np.array(history), DAY, chances)
    assert values.shape == (chances, DAY)
    seen = ~np.isnan(values[0])
    assert np.all(np.diff(values[:, seen], axis=0) <= 1e-9)  # V_1 >= V_2 >= ...
    assert np.all(np.isnan(values[:, ~seen]))  # a time of day never measured stays unknown


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 800), min_size=2 * DAY, max_size=8 * DAY), st.integers(0, 3 * DAY))
def test_more_slack_never_raises_the_threshold_past_the_horizon(history: list[float], horizon: int) -> None:
    """What a job waiting past the horizon holds out for: the cheapest slot it can still reach."""
    filled = fill_beyond_horizon(_forecast(np.full(horizon, 300.0), horizon + 4 * DAY), np.array(history), DAY,
                                 0.0, slack_aware=True)
    tail = filled[horizon:]
    thresholds = np.minimum.accumulate(tail)
    assert np.all(np.diff(thresholds) <= 0)
    # the same time of day is worth less with every further day of chances
    by_day = tail.reshape(4, DAY)
    assert np.all(np.diff(by_day, axis=0) <= 1e-9)


def test_the_continuation_value_is_the_empirical_one() -> None:
    """Days alternate between 100 and 300 g/kWh: one chance is worth 200, two 150, three 125
    (``E[min(X, V)]`` on the two-point distribution; a Gaussian would say otherwise)."""
    history = np.concatenate([np.full(DAY, 100.0 if d % 2 else 300.0) for d in range(28)])
    values = continuation_values(history, DAY, 3, days=28)
    np.testing.assert_allclose(values[:, 0], [200.0, 150.0, 125.0])


def test_on_identical_days_the_threshold_is_the_known_best() -> None:
    """Every day the same: waiting past the horizon is worth exactly that time of day's value."""
    shape = 200 + 100 * np.cos(2 * np.pi * np.arange(DAY) / DAY)  # cheapest at 12:00 (100 g/kWh)
    history = np.tile(shape, 14)
    values = continuation_values(history, DAY, 5)
    np.testing.assert_allclose(values, np.tile(shape, (5, 1)))
    filled = fill_beyond_horizon(_forecast(np.full(DAY, 250.0), 4 * DAY), history, DAY, 0.0, slack_aware=True)
    assert np.nanmin(filled[DAY:]) == 100.0
    # a job that can wait past the horizon holds out for the best slot of a day, no lower
    plan = _plan(filled, 1, 3 * DAY)
    assert plan.start is not None and plan.expected_g == 100.0


def test_a_deadline_inside_the_horizon_uses_nothing_past_it() -> None:
    history = np.tile(np.full(DAY, 10.0), 14)  # history says later is far cheaper
    forecast = _forecast(np.linspace(300, 200, DAY), 3 * DAY)
    filled = fill_beyond_horizon(forecast, history, DAY, 0.0, slack_aware=True)
    assert np.all(filled[DAY:] == 10.0)
    plan = _plan(filled, 2, 12)
    assert plan.feasible and max(plan.slots) < 12


def test_the_threshold_falls_toward_the_forecast_as_the_deadline_nears() -> None:
    """Noisy days: a job with four days past the horizon waits for a price a job due tomorrow takes."""
    rng = np.random.default_rng(1)
    history = np.repeat(rng.uniform(100, 300, 28), DAY)  # each day one level
    mean = float(history.mean())
    horizon = 12
    offer = mean - 20  # the forecast's best: a little below an average day
    forecast = _forecast(np.full(horizon, offer), horizon + 5 * DAY)
    filled = fill_beyond_horizon(forecast, history, DAY, 0.0, slack_aware=True)
    due_tomorrow = _plan(filled, 1, horizon + DAY)
    assert due_tomorrow.slots == (0,)  # one chance left is worth the mean: take the offer
    days_left = _plan(filled, 1, horizon + 4 * DAY)
    assert days_left.slots[0] >= horizon + 3 * DAY  # four chances are worth less than the offer: wait


def test_without_slack_awareness_the_profile_rule_is_unchanged() -> None:
    history = np.tile(np.arange(DAY, dtype=float), 7)
    profile, spread = daily_profile(history, DAY)
    filled = fill_beyond_horizon(_forecast(np.zeros(3), 3 * DAY), history, DAY, -0.5)
    k = np.arange(3, 3 * DAY)
    np.testing.assert_allclose(filled[3:], profile[k % DAY] - 0.5 * spread)
