"""A provider without a forecast gets the built-in forecaster's, from its own history, marked as such."""

from __future__ import annotations

import math
from datetime import datetime, timedelta, timezone

import pytest

from carbonshift.signals import BadSignalData, Series, SeriesKind, builtin_forecast

NOW = datetime(2024, 3, 20, 9, 40, tzinfo=timezone.utc)
H = timedelta(hours=1)


def intensity(t: datetime) -> float:
    """A grid with a solar dip at 12:00 UTC."""
    return 300.0 - 120.0 * max(0.0, math.cos(2 * math.pi * (t.hour + t.minute / 60 - 12) / 24))


def history(days: int, step: timedelta = timedelta(minutes=15)) -> Series:
    start = NOW - timedelta(days=days)
    n = int(timedelta(days=days) / step)
    return Series(points=tuple((start + i * step, intensity(start + i * step)) for i in range(n)),
                  unit="gCO2eq/kWh", source="test:DE", observed_at=NOW, zone="DE")


def test_forecast_follows_the_daily_shape_of_history() -> None:
    fc = builtin_forecast(history(21), now=NOW, horizon=timedelta(hours=24))
    assert fc.kind is SeriesKind.BUILTIN_FORECAST and fc.notes and "built-in forecast" in fc.notes[0]
    assert fc.points[0][0] == NOW.replace(minute=0) and fc.points[-1][0] >= NOW + timedelta(hours=23)
    cheapest = min(fc.points, key=lambda p: p[1])[0]
    assert cheapest.hour == 12
    # Hourly means of the 15-minute history: within a few g/kWh of the true hourly values.
    for t, v in fc.points[1:]:
        truth = sum(intensity(t + timedelta(minutes=m)) for m in (0, 15, 30, 45)) / 4
        assert abs(v - truth) < 5


def test_history_that_ended_weeks_ago_is_refused() -> None:
    old = history(10).replace(points=tuple((t - timedelta(days=40), v) for t, v in history(10).points))
    with pytest.raises(BadSignalData, match="no values in the last 28 days"):
        builtin_forecast(old, now=NOW, horizon=timedelta(hours=6))


def test_one_day_of_history_gives_yesterdays_shape() -> None:
    """Electricity Maps' history covers 24 h: enough for the daily shape, not for learning persistence."""
    fc = builtin_forecast(history(1), now=NOW, horizon=timedelta(hours=24))
    assert min(fc.points, key=lambda p: p[1])[0].hour == 12


def test_less_than_a_day_holds_the_latest_value() -> None:
    fc = builtin_forecast(history(1).between(NOW - timedelta(hours=6), NOW), now=NOW, horizon=timedelta(hours=3))
    assert len({v for _, v in fc.points}) == 1
