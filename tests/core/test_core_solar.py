"""The on-site solar forecast: the sun's path for the site, scaled by what the panels produced."""

from __future__ import annotations

from datetime import datetime, timezone

import numpy as np
import pytest

from carbonshift.core.solar import PanelOrientation, clear_sky_ghi, clear_sky_mean, clear_sky_poa, forecast_solar
from carbonshift.signals.tracedata import research_data_dir

BERLIN = (52.52, 13.405)
MIDSUMMER = datetime(2022, 6, 21, tzinfo=timezone.utc).timestamp()
H = 3600


def test_clear_sky_peaks_at_solar_noon_and_is_dark_at_night() -> None:
    minutes = MIDSUMMER + np.arange(24 * 60) * 60.0
    ghi = clear_sky_ghi(minutes, *BERLIN)
    noon_utc = np.argmax(ghi) / 60
    assert 10.9 < noon_utc < 11.3  # 12:00 local solar time is 11:06 UTC at 13.4° E
    assert ghi[0] == 0 and ghi[23 * 60] == 0  # 00:00 and 23:00 UTC
    assert 800 < ghi.max() < 950  # Haurwitz at 61° sun elevation
    equator = clear_sky_ghi(np.array([datetime(2022, 3, 20, 12, 7, tzinfo=timezone.utc).timestamp()]), 0.0, 0.0)
    assert equator[0] == pytest.approx(1098 * np.exp(-0.059), rel=0.01)  # sun overhead at the equinox


def test_forecast_is_the_clear_sky_curve_at_the_sites_scale() -> None:
    """Panels that gave 40 % of clear-sky GHI (as W per W/m²) for three days: the same tomorrow."""
    history = 0.4 * 100 * clear_sky_mean(MIDSUMMER - 3 * 86400, H, 72, *BERLIN)
    got = forecast_solar(history, H, MIDSUMMER, 24, *BERLIN)
    want = 0.4 * 100 * clear_sky_mean(MIDSUMMER, H, 24, *BERLIN)
    assert np.allclose(got, want, rtol=0.02, atol=1.0)


def test_a_cloudy_hour_weighs_on_the_next_hours_only() -> None:
    start = MIDSUMMER + 9 * H  # 09:00 UTC
    history = 100 * clear_sky_mean(start - 72 * H, H, 72, *BERLIN)
    history[-1] *= 0.2  # the last hour was overcast
    got = forecast_solar(history, H, start, 30, *BERLIN)
    clear = 100 * clear_sky_mean(start, H, 30, *BERLIN)
    assert got[0] < 0.6 * clear[0]  # next hour: still cloudy
    assert got[26] > 0.9 * clear[26]  # tomorrow 11:00: back to the site's usual


def test_without_daylight_history_no_solar_is_promised() -> None:
    night = np.zeros(6)
    assert not forecast_solar(night, H, MIDSUMMER, 24, *BERLIN).any()
    assert not forecast_solar(np.full(72, np.nan), H, MIDSUMMER, 24, *BERLIN).any()


def test_never_above_what_the_site_has_produced() -> None:
    history = 100 * clear_sky_mean(MIDSUMMER - 72 * H, H, 72, *BERLIN)
    history[-12:] *= 3  # a sensor glitch
    got = forecast_solar(history, H, MIDSUMMER, 24, *BERLIN)
    assert got.max() <= 1.05 * history.max() and (got >= 0).all()


@pytest.mark.research_data("vessim")
def test_closer_to_the_measured_pv_than_the_one_hour_hold() -> None:
    import pandas as pd

    frame = pd.read_csv(research_data_dir() / "vessim" / "datasets" / "solcast2022_global_actual.csv",
                        usecols=["datetime", "Berlin"])
    index = pd.to_datetime(frame["datetime"]).dt.tz_localize("UTC") - pd.Timedelta(minutes=5)
    hourly = pd.Series(frame["Berlin"].to_numpy(float), index=index).resample("1h").mean()
    pv = hourly.to_numpy()
    epochs = (hourly.index - pd.Timestamp("1970-01-01", tz="UTC")).total_seconds().to_numpy()
    ours, hold = 0.0, 0.0
    for i in range(72, pv.size - 24, 5):
        held = np.zeros(24)
        held[0] = pv[i - 1]
        ours += np.abs(forecast_solar(pv[i - 72:i], H, epochs[i], 24, *BERLIN) - pv[i:i + 24]).sum()
        hold += np.abs(held - pv[i:i + 24]).sum()
    assert ours < 0.5 * hold


# ---- panel orientation (spec.energy.panelTiltDegrees / panelAzimuthDegrees) ----------------------

EAST, SOUTH, WEST = 90.0, 180.0, 270.0


def _peak_hour_utc(orientation: PanelOrientation | None, day: float = MIDSUMMER) -> float:
    """Hour (UTC) of the peak of a site's forecast for ``day``, its history three clear days of its own plane."""
    history = 50 * clear_sky_mean(day - 3 * 86400, 600, 3 * 144, *BERLIN, orientation)
    forecast = forecast_solar(history, 600, day, 144, *BERLIN, orientation)
    return float(np.argmax(forecast)) / 6


def test_an_east_facing_array_peaks_before_solar_noon_and_a_west_facing_one_after() -> None:
    noon = _peak_hour_utc(None)  # 11:06 UTC in Berlin
    east = _peak_hour_utc(PanelOrientation(30, EAST))
    west = _peak_hour_utc(PanelOrientation(30, WEST))
    assert east < noon - 1.5 and west > noon + 1.5
    assert _peak_hour_utc(PanelOrientation(30, SOUTH)) == pytest.approx(noon, abs=0.2)


def test_a_steep_south_facing_array_gets_more_of_the_winter_sun_than_a_flat_one() -> None:
    """At 50° N around the winter solstice, 35° towards the south: more daily clear-sky energy."""
    site = (50.0, 8.0)
    for day in (datetime(2022, 12, 21, tzinfo=timezone.utc), datetime(2023, 1, 15, tzinfo=timezone.utc)):
        start = day.timestamp()
        flat = clear_sky_mean(start, 600, 144, *site).sum()
        tilted = clear_sky_mean(start, 600, 144, *site, PanelOrientation(35, SOUTH)).sum()
        assert tilted > 1.5 * flat
        north = clear_sky_mean(start, 600, 144, *site, PanelOrientation(35, 0.0)).sum()
        assert north < flat  # facing away from the sun: diffuse light only


def test_tilt_zero_is_the_horizontal_model_exactly() -> None:
    history = 0.4 * 100 * clear_sky_mean(MIDSUMMER - 3 * 86400, H, 72, *BERLIN)
    history[-3:] *= 0.5
    flat = forecast_solar(history, H, MIDSUMMER, 48, *BERLIN)
    for azimuth in (0.0, EAST, SOUTH, 333.0):
        assert np.array_equal(forecast_solar(history, H, MIDSUMMER, 48, *BERLIN, PanelOrientation(0, azimuth)), flat)
    # ... and the tilted model tends to it: beam + diffuse on a flat plane add up to GHI.
    minutes = MIDSUMMER + np.arange(24 * 60) * 60.0
    almost_flat = clear_sky_poa(minutes, *BERLIN, PanelOrientation(1e-9, EAST))
    assert np.allclose(almost_flat, clear_sky_ghi(minutes, *BERLIN), atol=1e-6)


def test_a_vertical_south_wall_at_midsummer_noon_gets_the_beam_at_a_grazing_angle() -> None:
    """Sun 61° up in the south: a vertical south wall sees cos(61°) of the beam, plus half the sky
    and half the ground's reflection; its irradiance is well below a flat panel's."""
    noon = np.array([MIDSUMMER + 11.1 * H])
    wall = clear_sky_poa(noon, *BERLIN, PanelOrientation(90, SOUTH))[0]
    flat = clear_sky_ghi(noon, *BERLIN)[0]
    assert 0.35 * flat < wall < 0.7 * flat
    assert not clear_sky_poa(MIDSUMMER + np.arange(0, 2 * H, 600), *BERLIN, PanelOrientation(40, SOUTH)).any()  # night


@pytest.mark.parametrize("tilt, azimuth", [(-1, 180), (90.5, 180), (30, -0.1), (30, 361)])
def test_orientation_out_of_range_is_refused(tilt: float, azimuth: float) -> None:
    with pytest.raises(ValueError):
        PanelOrientation(tilt, azimuth)
