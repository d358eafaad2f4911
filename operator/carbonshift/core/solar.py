"""On-site solar forecast: a clear-sky model for the site scaled by its recent measured output.

Why this module exists: without a forecast the operator assumed the current solar output holds
for one hour and then vanishes, so a job could not be planned into this afternoon's sun at 09:00.
The sun's path is known: a clear-sky irradiance curve for the site's latitude and longitude gives
the shape of every day, and the site's own recent output gives the scale (panel size, soiling
and today's clouds folded into one ratio). The ratio of the last hour leads the first
hours ahead (clouds persist for a while) and relaxes to the ratio of the last days beyond.

Formulas (standard, public): solar position from the NOAA Global Monitoring Division's
"General Solar Position Calculations" (Spencer's Fourier series for declination and the equation
of time); clear-sky global horizontal irradiance from Haurwitz (1945),
``GHI = 1098 * cos(z) * exp(-0.059 / cos(z))`` W/m² for a sun above the horizon. Pure numpy.

Panel orientation changes the shape, not just the scale: an east-facing array peaks in the
morning, a steep south-facing one gets more of the low winter sun than a flat one. For a tilted
plane the clear-sky GHI is split into beam and diffuse with the Erbs, Klein and Duffie (1982)
diffuse-fraction correlation on the clearness index (GHI over the extraterrestrial irradiance on
a horizontal plane), then transposed: beam times the cosine of the angle of incidence, isotropic
sky diffuse (Liu and Jordan 1963) ``DHI * (1 + cos tilt) / 2``, and ground reflection
``GHI * albedo * (1 - cos tilt) / 2``. A horizontal plane (tilt 0) is GHI itself, exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["PanelOrientation", "clear_sky_ghi", "clear_sky_mean", "clear_sky_poa", "forecast_solar"]

FloatArray = npt.NDArray[np.float64]

DAY_S = 86400.0
RECENT_S = 3600.0  # the "now" ratio: last hour of output against the model
DAYS_S = 3 * DAY_S  # the typical ratio: last three days
RELAX_S = 3 * 3600.0  # e-folding time from the recent ratio to the typical one
_SUBSTEPS = 6  # samples per slot when averaging the curve over a slot
_MIN_GHI = 20.0  # W/m²: below this (dawn, dusk) ratios are noise and are not used
SOLAR_CONSTANT_W_PER_M2 = 1367.0
ALBEDO = 0.2  # ground reflectance of grass or concrete; snow (0.6-0.9) would add to steep panels in winter
_MIN_COS_ZENITH_KT = 0.065  # the clearness index is meaningless with the sun on the horizon
_MIN_COS_ZENITH_BEAM = float(np.cos(np.radians(87.0)))  # below 3° elevation: all diffuse


@dataclass(frozen=True)
class PanelOrientation:
    """A fixed panel plane: its tilt from horizontal and the compass direction it faces."""

    tilt_degrees: float  # 0 = horizontal, 90 = vertical
    azimuth_degrees: float = 180.0  # clockwise from north: 90 = east, 180 = south, 270 = west

    def __post_init__(self) -> None:
        if not 0.0 <= self.tilt_degrees <= 90.0:
            raise ValueError(f"tilt_degrees must be within 0..90, got {self.tilt_degrees}")
        if not 0.0 <= self.azimuth_degrees <= 360.0:
            raise ValueError(f"azimuth_degrees must be within 0..360, got {self.azimuth_degrees}")


def _sun(epochs: FloatArray, latitude: float, longitude: float) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """The unit vector to the sun in the site's east/north/up frame, and the 0-based day of year."""
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
    up = np.sin(lat) * np.sin(declination) + np.cos(lat) * np.cos(declination) * np.cos(hour_angle)
    east = -np.cos(declination) * np.sin(hour_angle)  # hour angle > 0 in the afternoon: sun in the west
    north = np.sin(declination) * np.cos(lat) - np.cos(declination) * np.sin(lat) * np.cos(hour_angle)
    return east, north, up, day_of_year


def _haurwitz(cos_zenith: FloatArray) -> FloatArray:
    up = cos_zenith > 0.01
    safe = np.where(up, cos_zenith, 1.0)
    ghi: FloatArray = np.where(up, 1098.0 * safe * np.exp(-0.059 / safe), 0.0)
    return ghi


def clear_sky_ghi(epochs: FloatArray, latitude: float, longitude: float) -> FloatArray:
    """Clear-sky global horizontal irradiance (W/m²) at UNIX times ``epochs`` for a site."""
    return _haurwitz(_sun(epochs, latitude, longitude)[2])


def _erbs_diffuse_fraction(kt: FloatArray) -> FloatArray:
    """Share of GHI that is diffuse, from the clearness index (Erbs, Klein and Duffie 1982, eq. 1)."""
    middle = 0.9511 - 0.1604 * kt + 4.388 * kt**2 - 16.638 * kt**3 + 12.336 * kt**4
    fraction: FloatArray = np.where(kt <= 0.22, 1.0 - 0.09 * kt, np.where(kt <= 0.8, middle, 0.165))
    return fraction


def clear_sky_poa(epochs: FloatArray, latitude: float, longitude: float,
                  orientation: PanelOrientation | None = None) -> FloatArray:
    """Clear-sky irradiance (W/m²) on the plane of the panels; GHI for a horizontal or unknown plane."""
    if orientation is None or orientation.tilt_degrees == 0:
        return clear_sky_ghi(epochs, latitude, longitude)
    east, north, cos_zenith, day_of_year = _sun(epochs, latitude, longitude)
    ghi = _haurwitz(cos_zenith)
    extraterrestrial = SOLAR_CONSTANT_W_PER_M2 * (1 + 0.033 * np.cos(2 * np.pi * (day_of_year + 1) / 365.0))
    kt = np.clip(ghi / (extraterrestrial * np.maximum(cos_zenith, _MIN_COS_ZENITH_KT)), 0.0, 1.0)
    dhi = _erbs_diffuse_fraction(kt) * ghi
    beam_up = cos_zenith >= _MIN_COS_ZENITH_BEAM
    dni = np.where(beam_up, (ghi - dhi) / np.where(beam_up, cos_zenith, 1.0), 0.0)
    dhi = np.where(beam_up, dhi, ghi)  # the sun on the horizon: what arrives is diffuse
    tilt, azimuth = np.radians(orientation.tilt_degrees), np.radians(orientation.azimuth_degrees)
    # Cosine of the angle of incidence: the sun's unit vector dotted with the panel's normal.
    cos_incidence = (east * np.sin(tilt) * np.sin(azimuth) + north * np.sin(tilt) * np.cos(azimuth)
                     + cos_zenith * np.cos(tilt))
    beam = dni * np.maximum(cos_incidence, 0.0)
    sky = dhi * (1 + np.cos(tilt)) / 2
    ground = ghi * ALBEDO * (1 - np.cos(tilt)) / 2
    poa: FloatArray = beam + sky + ground
    return poa


def clear_sky_mean(first_epoch: float, step_seconds: float, count: int, latitude: float,
                   longitude: float, orientation: PanelOrientation | None = None) -> FloatArray:
    """Mean clear-sky irradiance on the panels' plane (GHI if horizontal or unknown) over each of
    ``count`` slots of ``step_seconds`` from ``first_epoch``."""
    offsets = (np.arange(_SUBSTEPS) + 0.5) / _SUBSTEPS * step_seconds
    times = first_epoch + np.arange(count)[:, None] * step_seconds + offsets[None, :]
    means: FloatArray = clear_sky_poa(times, latitude, longitude, orientation).mean(axis=1)
    return means


def forecast_solar(history_w: FloatArray, step_seconds: float, first_step_epoch: float, horizon_steps: int,
                   latitude: float, longitude: float, orientation: PanelOrientation | None = None) -> FloatArray:
    """Solar output (W) for ``horizon_steps`` slots from ``first_step_epoch``.

    ``history_w`` is the measured output at ``step_seconds`` resolution, oldest first, its last
    value the slot just before ``first_step_epoch`` (NaN = unknown). Without a measured daylight
    slot the site's scale is unknown and the forecast is all zero (no solar is promised).
    ``orientation`` shapes the clear-sky curve for the panels' plane; None: horizontal.
    """
    if step_seconds <= 0:
        raise ValueError(f"step_seconds must be positive, got {step_seconds}")
    horizon = max(0, int(horizon_steps))
    measured = np.asarray(history_w, dtype=np.float64).ravel()
    future = clear_sky_mean(first_step_epoch, step_seconds, horizon, latitude, longitude, orientation)
    past = clear_sky_mean(first_step_epoch - measured.size * step_seconds, step_seconds, measured.size,
                          latitude, longitude, orientation)
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
