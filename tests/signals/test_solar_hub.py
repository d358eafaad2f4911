"""On-site solar as the planner sees it: a site with a location gets a clear-sky forecast scaled by
its measured output (read from a real Prometheus over loopback); one without keeps the 1 h hold."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from carbonshift.api import MemberCluster
from carbonshift.controller.signalhub import SignalHub
from signals_support import run

AT = datetime(2020, 6, 4, 8, 0, tzinfo=timezone.utc)  # three backfilled days behind, the sun rising
SLOT = timedelta(minutes=15)
SOLAR = 'carbonshift_solar_power_watts{region="de"}'


def read_solar(url: str, at: datetime = AT, **location: float) -> np.ndarray:
    member = MemberCluster.model_validate({"metadata": {"name": "site", "uid": "u1"}, "spec": {
        "region": "eu-de", "zone": "DE", "carbonSignal": {"provider": "trace", "trace": {"path": "DE"}},
        "energy": {"prometheusUrl": url, "solarPowerQuery": SOLAR, **location}}})
    hub = SignalHub(now=lambda: at, secrets=None, slot=SLOT, horizon=timedelta(hours=24))

    async def go() -> Any:
        try:
            return await hub.read(member, at)
        finally:
            await hub.aclose()

    reading = run(go())
    assert reading.signals.solar_w is not None
    return np.asarray(reading.signals.solar_w)


def test_site_with_a_location_is_planned_on_the_afternoon_sun(prometheus_server: Any) -> None:
    # The simulated site's PV is a bell from 06:00 to 18:00 UTC, as at latitude 0, longitude 0.
    solar = read_solar(prometheus_server.url, latitude=0.0, longitude=0.0)
    noon = int((timedelta(hours=4)) / SLOT)  # 12:00
    assert solar[noon] > 2 * solar[0] > 0
    assert solar[int(timedelta(hours=5) / SLOT)] > 0  # beyond the one-hour hold
    assert solar[int(timedelta(hours=14) / SLOT)] == 0  # 22:00: night


def test_site_without_a_location_holds_the_current_output_for_one_hour(prometheus_server: Any) -> None:
    solar = read_solar(prometheus_server.url)
    hour = int(timedelta(hours=1) / SLOT)
    assert solar[0] > 0 and (solar[:hour] == solar[0]).all() and not solar[hour:].any()



def test_panels_facing_east_or_west_move_the_forecast_peak(prometheus_server: Any) -> None:
    """spec.energy.panelTiltDegrees/panelAzimuthDegrees reach the forecast: the same measured
    output, read as an east-facing array, is expected earlier in the day; as a west-facing one,
    later. Read before sunrise, so that the whole day is planned at the site's typical scale."""
    site = {"latitude": 0.0, "longitude": 0.0}
    dawn = AT.replace(hour=4)

    def midpoint(**orientation: float) -> float:
        """Hour (UTC) by which half of the day's forecast energy has come."""
        solar = read_solar(prometheus_server.url, dawn, **site, **orientation)
        assert solar.any()
        half = int(np.searchsorted(np.cumsum(solar), solar.sum() / 2))
        return 4 + half * SLOT / timedelta(hours=1)

    flat = midpoint()
    east = midpoint(panelTiltDegrees=40, panelAzimuthDegrees=90)
    west = midpoint(panelTiltDegrees=40, panelAzimuthDegrees=270)
    assert east < flat - 0.5 and west > flat + 0.5, (east, flat, west)
