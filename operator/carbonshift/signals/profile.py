"""A weekly profile (mean per hour-of-week) built from history, used when no forecast exists.

The result is always marked ``kind="profile-fallback"`` so nobody mistakes it for a forecast.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np

from carbonshift.timefmt import ensure_utc

from .errors import BadSignalData
from .series import Series, SeriesKind, to_slots

__all__ = ["HOURS_PER_WEEK", "weekly_profile", "profile_forecast"]

HOURS_PER_WEEK = 7 * 24
_HOUR = timedelta(hours=1)


def _hour_of_week(t: datetime) -> int:
    return t.weekday() * 24 + t.hour


def weekly_profile(history: Series) -> np.ndarray:
    """Mean value per UTC hour-of-week (Monday 00:00 = 0); NaN where history has no data."""
    if not history.points:
        raise BadSignalData(f"{history.source}: no history to build a weekly profile from")
    first = history.points[0][0].replace(minute=0, second=0, microsecond=0)
    hours = int((history.points[-1][0] - first) / _HOUR) + 1
    hourly = to_slots(history, first, _HOUR, hours)
    sums = np.zeros(HOURS_PER_WEEK)
    counts = np.zeros(HOURS_PER_WEEK)
    how0 = _hour_of_week(first)
    idx = (how0 + np.arange(hours)) % HOURS_PER_WEEK
    ok = ~np.isnan(hourly)
    np.add.at(sums, idx[ok], hourly[ok])
    np.add.at(counts, idx[ok], 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.where(counts > 0, counts, 1), np.nan)


def profile_forecast(history: Series, *, now: datetime, horizon: timedelta) -> Series:
    """Hourly points from the hour containing ``now`` over ``horizon``, from the weekly profile."""
    profile = weekly_profile(history)
    if np.isnan(profile).all():
        raise BadSignalData(f"{history.source}: history has no usable values for a profile")
    # Fill hours never seen with the overall mean rather than inventing structure.
    profile = np.where(np.isnan(profile), np.nanmean(profile), profile)
    start = ensure_utc(now).replace(minute=0, second=0, microsecond=0)
    n = max(1, int(np.ceil(horizon / _HOUR)))
    points = tuple(
        (start + i * _HOUR, float(profile[_hour_of_week(start + i * _HOUR)])) for i in range(n)
    )
    weeks = (history.points[-1][0] - history.points[0][0]) / timedelta(weeks=1)
    return Series(
        points=points,
        unit=history.unit,
        source=history.source,
        observed_at=history.observed_at,
        kind=SeriesKind.PROFILE_FALLBACK,
        zone=history.zone,
        notes=(f"weekly profile (mean per hour-of-week) over {weeks:.1f} weeks of history",),
    )


