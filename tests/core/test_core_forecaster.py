"""The built-in day-ahead forecaster: what a signal without a provider forecast gets planned on."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonshift.core.forecaster import forecast_day_ahead
from carbonshift.signals.tracedata import research_data_dir

H = 3600
T0 = 1_700_000_000.0 - 1_700_000_000.0 % 86400  # a UTC midnight


def daily(days: int, per_day: int = 24, level: float = 300.0, swing: float = 100.0) -> np.ndarray:
    """A clean daily cycle: low at midday (solar), high in the evening."""
    hours = np.arange(days * per_day) * 24 / per_day
    return level + swing * np.cos(2 * np.pi * (hours - 19) / 24)


def test_repeating_day_is_forecast_exactly() -> None:
    history = daily(28)
    got = forecast_day_ahead(history, H, T0, 48)
    assert np.allclose(got, daily(2), atol=1e-6)


def test_cheapest_hour_tomorrow_is_the_one_history_shows() -> None:
    rng = np.random.default_rng(1)
    history = daily(28) + rng.normal(0, 15, 28 * 24)
    got = forecast_day_ahead(history, H, T0, 24)
    assert abs(int(np.argmin(got)) - int(np.argmin(daily(1)))) <= 1  # neighbours differ by 3 g, noise is 15 g
    assert np.max(np.abs(got - daily(1))) < 15


def test_a_lasting_level_change_is_kept() -> None:
    """Three windy days at -120 g/kWh: the forecast follows today's level, not the four-week mean."""
    history = daily(28)
    history[-72:] -= 120
    # The fit learns from history how deviations persist: give it earlier multi-day spells too.
    for start in (3, 10, 17):
        history[start * 24:(start + 3) * 24] -= 120
    got = forecast_day_ahead(history, H, T0, 24)
    assert np.mean(got) < np.mean(daily(1)) - 60


def test_gaps_are_tolerated_and_results_stay_finite() -> None:
    history = daily(28)
    history[100:160] = np.nan
    history[-3:] = np.nan  # the exporter was down for the last three hours
    got = forecast_day_ahead(history, H, T0, 36)
    assert got.shape == (36,) and np.isfinite(got).all()
    assert np.allclose(got[:24], daily(1)[:24], atol=5)


def test_short_history_holds_the_last_value() -> None:
    assert forecast_day_ahead(np.array([200.0, 210.0, np.nan]), H, T0, 3).tolist() == [210.0] * 3


def test_no_value_at_all_gives_unknown() -> None:
    assert np.isnan(forecast_day_ahead(np.full(100, np.nan), H, T0, 5)).all()
    assert forecast_day_ahead(np.array([]), H, T0, 4).shape == (4,)


def test_five_minute_history() -> None:
    history = daily(14, per_day=288)
    got = forecast_day_ahead(history, 300, T0, 288)
    assert np.allclose(got, daily(1, per_day=288), atol=1e-6)


def test_bad_step_is_refused() -> None:
    with pytest.raises(ValueError):
        forecast_day_ahead(daily(3), 0, T0, 4)


@settings(deadline=None, max_examples=40)
@given(st.lists(st.one_of(st.floats(0, 2000), st.just(float("nan"))), min_size=0, max_size=24 * 9),
       st.integers(0, 60))
def test_never_negative_and_right_length(values: list[float], horizon: int) -> None:
    got = forecast_day_ahead(np.array(values, dtype=float), H, T0, horizon)
    assert got.shape == (horizon,)
    known = got[~np.isnan(got)]
    assert (known >= 0).all()
    if values and not np.isnan(values).all():
        assert np.isfinite(got).all()


@pytest.mark.research_data("dacf")
@pytest.mark.parametrize("region", ["CISO", "PJM", "ERCO", "ISNE", "SE", "DE"])
def test_beats_the_weekly_profile_on_real_grids(region: str) -> None:
    """On each DACF grid (2021 H2) the day-ahead error is below the hour-of-week mean's (every 5th day)."""
    path = research_data_dir() / "dacf" / "data" / region / f"{region}_carbon_from_src_prod_forecasts_direct.csv"
    with path.open() as fh:
        actual = np.array([float(row["carbon_intensity"]) for row in csv.DictReader(fh)])
    ours, profile = [], []
    for i in range(28 * 24, actual.size - 23, 5 * 24):
        day = actual[i:i + 24]
        history = actual[i - 28 * 24:i]
        ours.append(np.mean(np.abs(forecast_day_ahead(history, H, T0, 24) - day) / day))
        # Mean per hour of week over the four weeks (history starts on the same weekday and hour).
        week = np.nanmean(history.reshape(4, 168), axis=0)
        profile.append(np.mean(np.abs(week[:24] - day) / day))
    assert np.mean(ours) < np.mean(profile)
