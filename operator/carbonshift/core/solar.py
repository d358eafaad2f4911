"""On-site solar forecast: a clear-sky model for the site scaled by its recent measured output.

Why this module exists: without a forecast the operator assumed the current solar output holds
for one hour and then vanishes, so a job could not be planned into this afternoon's sun at 09:00.
The sun's path is known: a clear-sky irradiance curve for the site's latitude and longitude gives
the shape of every day, and the site's own recent output gives the scale (panel size, tilt,
soiling and today's clouds folded into one ratio). The ratio of the last hour leads the first
hours ahead (clouds persist for a while) and relaxes to the ratio of the last days beyond.

Formulas (standard, public): solar position from the NOAA Global Monitoring Division's
"General Solar Position Calculations" (Spencer's Fourier series for declination and the equation
of time); clear-sky global horizontal irradiance from Haurwitz (1945),
``GHI = 1098 * cos(z) * exp(-0.059 / cos(z))`` W/m² for a sun above the horizon. Pure numpy.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["clear_sky_ghi", "clear_sky_mean", "forecast_solar"]

FloatArray = npt.NDArray[np.float64]

DAY_S = 86400.0
RECENT_S = 3600.0  # the "now" ratio: last hour of output against the model
DAYS_S = 3 * DAY_S  # the typical ratio: last three days
RELAX_S = 3 * 3600.0  # e-folding time from the recent ratio to the typical one
_SUBSTEPS = 6  # samples per slot when averaging the curve over a slot
_MIN_GHI = 20.0  # W/m²: below this (dawn, dusk) ratios are noise and are not used


def clear_sky_ghi(epochs: FloatArray, latitude: float, longitude: float) -> FloatArray:
    """Clear-sky global horizontal irradiance (W/m²) at UNIX times ``epochs`` for a site."""
    t = np.asarray(epochs, dtype=np.float64)
    day_of_year = np.floor((t % (365.2425 * DAY_S)) / DAY_S)  # 0-based; drifts < 1 day over decades
    hour = (t % DAY_S) / 3600.0
    gamma = 2 * np.pi / 365.0 * (day_of_year + (hour - 12) / 24)
    eq_time_min = 229.18 * (0.000075 + 0.001868 * np.cos(gamma) - 0.032077 * np.sin(gamma)
                            - 0.014615 * np.cos(2 * gamma) - 0.040849 * np.sin(2 * gamma))
    declination = (0.006918 - 0.399912 * np.cos(gamma) + 0.070257 * np.sin(gamma)
                   - 0.006758 * np.cos(2 * gamma) + 0.000907 * np.sin(2 * gamma)
                   - 0.002697 * np.cos(3 * gamma) + 0.00148 * np.sin(3 * gamma))
    solar_time_min = hour * 60 + eq_time_min + 4 * longitude
    hour_angle = np.radians(solar_time_min / 4 - 180)
    lat = np.radians(latitude)
    cos_zenith = np.sin(lat) * np.sin(declination) + np.cos(lat) * np.cos(declination) * np.cos(hour_angle)
    up = cos_zenith > 0.01
    safe = np.where(up, cos_zenith, 1.0)
    return np.where(up, 1098.0 * safe * np.exp(-0.059 / safe), 0.0)


def clear_sky_mean(first_epoch: float, step_seconds: float, count: int, latitude: float,
                   longitude: float) -> FloatArray:
    """Mean clear-sky GHI over each of ``count`` slots of ``step_seconds`` from ``first_epoch``."""
    offsets = (np.arange(_SUBSTEPS) + 0.5) / _SUBSTEPS * step_seconds
    times = first_epoch + np.arange(count)[:, None] * step_seconds + offsets[None, :]
    means: FloatArray = clear_sky_ghi(times, latitude, longitude).mean(axis=1)
    return means


def forecast_solar(history_w: FloatArray, step_seconds: float, first_step_epoch: float, horizon_steps: int,
                   latitude: float, longitude: float) -> FloatArray:
    """Solar output (W) for ``horizon_steps`` slots from ``first_step_epoch``.

    ``history_w`` is the measured output at ``step_seconds`` resolution, oldest first, its last
    value the slot just before ``first_step_epoch`` (NaN = unknown). Without a measured daylight
    slot the site's scale is unknown and the forecast is all zero (no solar is promised).
    """
    if step_seconds <= 0:
        raise ValueError(f"step_seconds must be positive, got {step_seconds}")
    horizon = max(0, int(horizon_steps))
    measured = np.asarray(history_w, dtype=np.float64).ravel()
    future = clear_sky_mean(first_step_epoch, step_seconds, horizon, latitude, longitude)
    past = clear_sky_mean(first_step_epoch - measured.size * step_seconds, step_seconds, measured.size,
                          latitude, longitude)
    typical = _ratio(measured, past, int(np.ceil(DAYS_S / step_seconds)))
    if typical is None:
        return np.zeros(horizon)
    recent = _ratio(measured, past, int(np.ceil(RECENT_S / step_seconds)))
    lead_s = (np.arange(horizon) + 0.5) * step_seconds
    ratio = typical if recent is None else typical + (recent - typical) * np.exp(-lead_s / RELAX_S)
    forecast = ratio * future
    known = measured[~np.isnan(measured)]
    ceiling = float(known.max()) if known.size and known.max() > 0 else np.inf
    return np.clip(forecast, 0.0, ceiling * 1.05)  # never above what the site has produced (+5%)


def _ratio(measured: FloatArray, clear: FloatArray, last: int) -> float | None:
    """Measured energy / clear-sky energy over the last ``last`` slots' daylight; None without daylight data."""
    m = measured[-last:]
    c = clear[-last:]
    use = (c >= _MIN_GHI) & ~np.isnan(m)
    if not use.any():
        return None
    return float(np.maximum(m[use], 0.0).sum() / c[use].sum())
