"""Series value type and resampling onto the decision core's slot grid."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonshift.signals import G_PER_KWH, Series, SeriesKind, to_slots

T0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
H = timedelta(hours=1)


def series(values: list[float], step: timedelta = H, start: datetime = T0, **kw: object) -> Series:
    return Series(points=tuple((start + i * step, v) for i, v in enumerate(values)), unit=G_PER_KWH, source="test",
                  observed_at=start + (len(values) - 1) * step, **kw)  # type: ignore[arg-type]


def test_series_refuses_naive_datetimes() -> None:
    with pytest.raises(ValueError, match="naive"):
        Series(points=((datetime(2024, 1, 1), 1.0),), unit=G_PER_KWH, source="x", observed_at=T0)


def test_series_sorts_and_converts_to_utc() -> None:
    cet = timezone(timedelta(hours=1))
    s = Series(points=((T0 + H, 2.0), (datetime(2024, 1, 1, 1, tzinfo=cet), 1.0)), unit=G_PER_KWH, source="x",
               observed_at=T0, kind="forecast")  # type: ignore[arg-type]
    assert s.points == ((T0, 1.0), (T0 + H, 2.0))
    assert s.kind is SeriesKind.FORECAST
    assert s.age(T0 + 2 * H) == 2 * H


def test_to_slots_hourly_onto_half_hours_holds_values() -> None:
    out = to_slots(series([100, 200, 300]), T0, timedelta(minutes=30), 6)
    np.testing.assert_allclose(out, [100, 100, 200, 200, 300, 300])


def test_to_slots_averages_quarter_hours_into_hours() -> None:
    out = to_slots(series([100, 200, 300, 400, 0, 0, 0, 0], step=timedelta(minutes=15)), T0, H, 2)
    np.testing.assert_allclose(out, [250, 0])


def test_to_slots_marks_missing_data_nan() -> None:
    out = to_slots(series([100, 200]), T0 - H, H, 5)
    assert np.isnan(out[0]) and np.isnan(out[3]) and np.isnan(out[4])
    np.testing.assert_allclose(out[1:3], [100, 200])


def test_to_slots_does_not_bridge_huge_gaps() -> None:
    hours = [0, 1, 2, 3, 14, 15, 16]
    s = Series(points=tuple((T0 + h * H, 100.0 if h < 10 else 300.0) for h in hours), unit=G_PER_KWH, source="x",
               observed_at=T0)
    out = to_slots(s, T0, H, 18)
    np.testing.assert_allclose(out[:4], 100)
    assert np.isnan(out[5:14]).all()
    np.testing.assert_allclose(out[14:17], 300)
    assert np.isnan(out[17])


def test_to_slots_later_series_win() -> None:
    current = series([50])
    forecast = series([100, 200, 300], kind=SeriesKind.FORECAST)
    out = to_slots([forecast, current], T0, H, 3)
    np.testing.assert_allclose(out, [50, 200, 300])


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(min_value=0, max_value=1500), min_size=2, max_size=48),
       st.sampled_from([5, 15, 30, 60]), st.sampled_from([15, 60, 120]))
def test_to_slots_preserves_the_mean_over_full_coverage(values: list[float], step_min: int, slot_min: int) -> None:
    step, slot = timedelta(minutes=step_min), timedelta(minutes=slot_min)
    span = len(values) * step
    count = int(span / slot)
    if count == 0:
        return
    out = to_slots(series(values, step=step), T0, slot, count)
    assert not np.isnan(out).any()
    # Time-weighted: the slot means weighted by slot length equal the step function's mean.
    covered = count * slot
    full = to_slots(series(values, step=step), T0, covered, 1)[0]
    assert np.isclose(out.mean(), full, rtol=1e-9, atol=1e-9)
    assert out.min() >= min(values) - 1e-9 and out.max() <= max(values) + 1e-9
