"""The built-in day-ahead forecaster: a signal's own history in, its next hours out.

Why this module exists: Prometheus exporters and trace-less zones give only current values, and
a mean per hour-of-week (``signals/profile.py``) ignores what the grid is doing today. This model
keeps the daily shape of the recent past and learns from the same history how long today's
deviation from that shape lasts:

1. *profile*: the recency-weighted mean of the last ``PROFILE_DAYS`` days at each time of day
   (weights halve every ``HALF_LIFE_DAYS``), so a changing season moves it within a week or two;
2. *anomaly*: history minus profile. The forecast anomaly at lead ``h`` is
   ``b_h * (last anomaly) + g_h * (mean anomaly of the last day)``, with ``b_h, g_h`` fitted by
   least squares on the history itself (every past slot as an issue time, all leads at once).
   A windy week (anomalies that persist) keeps its level; a noisy grid reverts to the profile.

Day-of-week terms were measured and left out: on the six DACF grids (2021 H2) they made the
day-ahead MAPE worse (bench/forecaster.py). Pure numpy; one call for 28 days of hourly history
and a 48 h horizon costs well under a millisecond per region, so it is refitted every cycle.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["HALF_LIFE_DAYS", "PROFILE_DAYS", "forecast_day_ahead"]

FloatArray = npt.NDArray[np.float64]

DAY_S = 86400
PROFILE_DAYS = 28  # history used; the operator's fallback fetches four weeks
HALF_LIFE_DAYS = 7.0
# Below one whole day there is no daily shape: persistence of the last value. With one day (e.g.
# Electricity Maps' 24 h history) the forecast is yesterday's shape; the persistence fit needs two.
_MIN_DAYS = 1
_RIDGE = 1e-3  # relative shrinkage of the anomaly coefficients (keeps near-singular fits finite)


def forecast_day_ahead(history: FloatArray, step_seconds: int, first_step_epoch: float,
                       horizon_steps: int) -> FloatArray:
    """``horizon_steps`` values from ``first_step_epoch`` on, from ``history`` alone.

    ``history`` holds the signal at ``step_seconds`` resolution, oldest first, its last value being
    the slot just before ``first_step_epoch``; NaN marks a missing value. The result is never
    negative; it is all NaN only when the history holds no value at all.
    """
    del first_step_epoch  # the history's last slot fixes the phase of the day already
    if step_seconds <= 0:
        raise ValueError(f"step_seconds must be positive, got {step_seconds}")
    horizon = max(0, int(horizon_steps))
    y = np.asarray(history, dtype=np.float64).ravel()
    known = np.flatnonzero(~np.isnan(y))
    if known.size == 0:
        return np.full(horizon, np.nan)
    per_day = round(DAY_S / step_seconds)
    # Whole days from the first known value on (leading gaps, e.g. a new exporter, are no days).
    days = min(PROFILE_DAYS, (y.size - known[0]) // per_day) if per_day >= 1 else 0
    if days < _MIN_DAYS:
        return np.full(horizon, max(0.0, float(y[known[-1]])))
    y = y[y.size - days * per_day:]
    profile = _daily_profile(y.reshape(days, per_day))
    anomaly = _carry_forward(y - np.tile(profile, days))
    day_mean = _trailing_mean(anomaly, per_day)
    b, g = _fit_leads(anomaly, day_mean, per_day, horizon)
    forecast: FloatArray = profile[np.arange(horizon) % per_day] + b * anomaly[-1] + g * day_mean[-1]
    return np.maximum(forecast, 0.0)


def _daily_profile(days: FloatArray) -> FloatArray:
    """Recency-weighted mean per time of day; a time of day never seen gets the overall mean."""
    age = np.arange(days.shape[0])[::-1].astype(np.float64)
    weights = 0.5 ** (age / HALF_LIFE_DAYS)
    seen = ~np.isnan(days)
    total = (weights[:, None] * seen).sum(axis=0)
    weighted = (weights[:, None] * np.where(seen, days, 0.0)).sum(axis=0)
    profile = np.divide(weighted, total, out=np.full(days.shape[1], np.nan), where=total > 0)
    filled: FloatArray = np.where(np.isnan(profile), np.nanmean(profile), profile)
    return filled


def _carry_forward(values: FloatArray) -> FloatArray:
    """NaN replaced by the last known value before it (0 before the first one)."""
    index = np.where(np.isnan(values), 0, np.arange(values.size))
    np.maximum.accumulate(index, out=index)
    filled = values[index]
    return np.where(np.isnan(filled), 0.0, filled)


def _trailing_mean(values: FloatArray, window: int) -> FloatArray:
    sums = np.concatenate(([0.0], np.cumsum(values)))
    end = np.arange(1, values.size + 1)
    begin = np.maximum(0, end - window)
    return (sums[end] - sums[begin]) / (end - begin)


def _fit_leads(anomaly: FloatArray, day_mean: FloatArray, per_day: int,
               horizon: int) -> tuple[FloatArray, FloatArray]:
    """Least-squares ``b_h, g_h`` for every lead 1..horizon (leads beyond the history reuse the last fit).

    Issue times start after the first day so that ``day_mean`` covers a whole day.
    """
    n = anomaly.size
    b = np.zeros(horizon)
    g = np.zeros(horizon)
    longest = n - per_day - 1  # the longest lead with at least one issue time
    if horizon == 0 or longest < 1:
        return b, g
    leads = np.minimum(np.arange(1, horizon + 1), longest)
    x1 = anomaly[per_day:]
    x2 = day_mean[per_day:]
    # Sums over issue times t in [per_day, n - h): prefix sums give the 2x2 Gram matrix per lead.
    c11 = np.concatenate(([0.0], np.cumsum(x1 * x1)))
    c12 = np.concatenate(([0.0], np.cumsum(x1 * x2)))
    c22 = np.concatenate(([0.0], np.cumsum(x2 * x2)))
    unique = np.unique(leads)
    stop = n - per_day - unique  # issue times per lead
    s11, s12, s22 = c11[stop], c12[stop], c22[stop]
    # Cross sums r[h] = sum over issue times t of x[t] * anomaly[t + h], for all leads at once (FFT).
    ahead = anomaly[per_day:]
    r1 = _lagged_products(x1, ahead)[unique]
    r2 = _lagged_products(x2, ahead)[unique]
    ridge = _RIDGE * (s11 + s22) + 1e-12
    a11, a22 = s11 + ridge, s22 + ridge
    det = a11 * a22 - s12 * s12
    coef_b = (a22 * r1 - s12 * r2) / det
    coef_g = (a11 * r2 - s12 * r1) / det
    pos = np.searchsorted(unique, leads)
    return coef_b[pos], coef_g[pos]


def _lagged_products(x: FloatArray, y: FloatArray) -> FloatArray:
    """``out[h] = sum_k x[k] * y[k + h]`` for every lag ``h`` in ``0..len(y)-1`` (same-length inputs)."""
    size = 1 << int(2 * x.size - 1).bit_length()
    spectrum = np.conj(np.fft.rfft(x, size)) * np.fft.rfft(y, size)
    return np.fft.irfft(spectrum, size)[: y.size]
