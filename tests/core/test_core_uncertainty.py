"""Deciding under forecast uncertainty, and planning past the forecast's horizon."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np

from carbonshift.core import Job, RegionSignals, plan_job
from carbonshift.core.stopping import daily_profile, fill_beyond_horizon
from carbonshift.core.uncertainty import LeadErrors, condition, learn_lead_errors

T0 = datetime(2021, 7, 1, tzinfo=timezone.utc)
SLOT = timedelta(minutes=30)


def _plan(values: np.ndarray, hours: float, slack_h: float) -> object:
    job = Job(id="j", submit_at=T0, duration=timedelta(hours=hours), deadline=T0 + timedelta(hours=hours + slack_h),
              power_w=1000.0)
    return plan_job(job, [RegionSignals(region="r", start=T0, slot=SLOT, intensity_g_per_kwh=values)])


def test_errors_by_lead_are_learned_from_past_forecasts() -> None:
    rng = np.random.default_rng(0)
    actual = 200 + 10 * rng.standard_normal((500, 4))
    forecast = actual + np.array([5.0, 0.0, -5.0, 0.0]) + rng.standard_normal((500, 4)) * np.array([1, 2, 4, 8])
    errors = learn_lead_errors(forecast, actual)
    np.testing.assert_allclose(errors.bias, [5, 0, -5, 0], atol=1.0)
    assert list(np.argsort(errors.sigma)) == [0, 1, 2, 3]


def test_a_flat_forecast_moves_nothing() -> None:
    """Persistence: every lead says the same; the premium on waiting keeps the job at its submission."""
    flat = np.full(96, 250.0)
    sigma = np.linspace(5, 40, 96)
    planned = condition(flat, LeadErrors(np.zeros(96), sigma))
    plan = _plan(planned, 2, 24)
    assert plan.start == T0


def test_a_gain_larger_than_the_uncertainty_still_moves_work() -> None:
    forecast = np.full(96, 300.0)
    forecast[40:50] = 150.0
    planned = condition(forecast, LeadErrors(np.zeros(96), np.linspace(5, 30, 96)))
    assert _plan(planned, 2, 24).start == T0 + 40 * SLOT


def test_bias_is_corrected_and_history_fills_what_the_provider_does_not_reach() -> None:
    forecast = np.full(10, 210.0)
    forecast[6:] = np.nan
    history = np.full(10, 190.0)
    errors = LeadErrors(np.full(10, 10.0), np.full(10, 5.0))
    history_errors = LeadErrors(np.zeros(10), np.full(10, 5.0))
    out = condition(forecast, errors, history, history_errors, premium=0.0)
    np.testing.assert_allclose(out[:6], 195.0)  # (200 + 190) / 2: equal variances
    np.testing.assert_allclose(out[6:], 190.0)


def test_a_job_longer_than_the_horizon_is_planned_on_the_history_profile() -> None:
    """A 60 h job on a 48 h forecast: unknown slots get no window; valued by history, it is planned."""
    day = 48
    history = 200 + 100 * np.sin(2 * np.pi * np.arange(14 * day) / day)
    forecast = np.full(200, np.nan)
    forecast[:96] = history[-96:]
    raw = _plan(forecast, 60, 40)
    assert not raw.slots or raw.start == T0  # nothing known to compare: no greener window found
    filled = fill_beyond_horizon(forecast, history, day)
    assert not np.isnan(filled).any()
    plan = _plan(filled, 60, 40)
    assert plan.feasible and len(plan.slots) == 120


def test_the_profile_follows_the_time_of_day() -> None:
    day = 48
    history = np.tile(np.arange(day, dtype=float), 7)
    profile, spread = daily_profile(history, day)
    assert spread == 0.0
    np.testing.assert_array_equal(profile, np.arange(day))  # history ends at a day boundary


def test_the_core_plans_a_job_longer_than_its_forecast_grid() -> None:
    """A 60 h job on a 48 h grid was ``NoCapacity`` (it waited for its deadline); now it is planned:
    the slots past the grid are valued at the grid's last day, repeated, and the cheapest start wins."""
    from carbonshift.core import ReasonCode

    day = 48
    values = 200 + 100 * np.sin(2 * np.pi * np.arange(2 * day) / day)  # 48 h, peak 6 h after now
    for deadline_h in (80, 60):  # with slack, and with none (the deadline forces the start now)
        job = Job(id="long", submit_at=T0, duration=timedelta(hours=60), deadline=T0 + timedelta(hours=deadline_h),
                  power_w=1000.0)
        plan = plan_job(job, [RegionSignals(region="r", start=T0, slot=SLOT, intensity_g_per_kwh=values)])
        assert plan.feasible and ReasonCode.NO_CAPACITY not in plan.codes
        assert plan.start is not None and plan.end == plan.start + job.duration and plan.end <= job.deadline
        assert plan.slots == tuple(range(plan.slots[0], 2 * day))  # the part on the grid
        assert plan.expected_g <= plan.baseline_g + 1e-9
        assert (plan.start == T0) == (deadline_h == 60)  # with slack it skips the coming peak


def test_an_error_common_to_every_lead_costs_no_premium() -> None:
    """A pure level error (each day's forecast off by the same amount at every hour) leaves the ranking
    of the hours as it is: the spread of the gain's error is 0, and the cheaper hour still wins."""
    from carbonshift.core.uncertainty import relative_spread

    rng = np.random.default_rng(1)
    level = 40.0 * rng.standard_normal((60, 1))
    errors = np.repeat(level, 96, axis=1)
    spread = relative_spread(errors)
    np.testing.assert_allclose(spread, 0.0, atol=1e-9)
    forecast = np.full(96, 300.0)
    forecast[40:44] = 290.0  # 10 g/kWh cheaper, far less than the 40 g/kWh level error
    learned = learn_lead_errors(forecast[None, :] + errors, np.full((60, 96), 300.0))
    planned = condition(forecast, LeadErrors(np.zeros(96), learned.sigma, spread))
    assert _plan(planned, 2, 24).start == T0 + 40 * SLOT


def test_independent_errors_price_the_gain_at_sqrt_two_sigma() -> None:
    from carbonshift.core.uncertainty import relative_spread

    rng = np.random.default_rng(2)
    errors = 10.0 * rng.standard_normal((4000, 12))
    spread = relative_spread(errors)
    assert spread[0] == 0.0  # the run "not moving" stands for
    np.testing.assert_allclose(spread[1:], 10.0 * np.sqrt(2), rtol=0.05)
    # pivoting at a preferred start: that slot is free, every other is priced against it
    spread = relative_spread(errors, pivot=5)
    assert spread[5] == 0.0 and np.all(spread[np.arange(12) != 5] > 13.0)


def test_with_the_gains_spread_a_flat_forecast_moves_nothing() -> None:
    rng = np.random.default_rng(3)
    from carbonshift.core.uncertainty import relative_spread

    spread = relative_spread(15.0 * rng.standard_normal((100, 96)))
    planned = condition(np.full(96, 250.0), LeadErrors(np.zeros(96), np.full(96, 15.0), spread))
    assert _plan(planned, 2, 24).start == T0
    planned = condition(np.full(96, 250.0), LeadErrors(np.zeros(96), np.full(96, 15.0), relative_spread(
        15.0 * rng.standard_normal((100, 96)), pivot=20)), pivot=20)
    assert np.argmin(planned) == 20  # a preferred start stays the cheapest


def test_work_moves_only_for_a_gain_larger_than_the_premium() -> None:
    """Errors constant in level across leads (sigma equal everywhere: the old rule priced nothing) but
    independent from hour to hour: the gain must beat premium x sqrt(2) sigma."""
    from carbonshift.core.uncertainty import relative_spread

    rng = np.random.default_rng(4)
    spread = relative_spread(20.0 * rng.standard_normal((5000, 96)), pivot_slots=2)  # a one-hour run now
    premium = 0.5  # x ~28 g/kWh: ~14 g/kWh a slot
    for gain, moves in ((8.0, False), (25.0, True)):
        forecast = np.full(96, 300.0)
        forecast[40:] -= gain
        planned = condition(forecast, LeadErrors(np.zeros(96), np.full(96, 20.0), spread), premium=premium,
                            pivot_slots=2)
        assert (_plan(planned, 1, 24).start != T0) == moves
