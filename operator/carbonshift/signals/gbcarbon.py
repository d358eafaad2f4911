"""The GB Carbon Intensity API (National Energy System Operator), national or one DNO region.

Follows https://carbon-intensity.github.io/api-definitions/: national ``GET /intensity``,
``/intensity/{from}/fw48h``, ``/intensity/{from}/{to}``; regional ``GET /regional/regionid/{id}``,
``/regional/intensity/{from}/fw48h/regionid/{id}``, ``/regional/intensity/{from}/{to}/regionid/{id}``.
Half-hour periods with ``intensity.forecast`` and (national only) ``intensity.actual``.
No token needed. The API publishes no forecast generation time, so ``observed_at`` of a
forecast is the time we fetched it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from carbonshift.timefmt import ensure_utc, parse_timestamp, to_iso

from .errors import BadSignalData
from .httpclient import JsonClient
from .series import G_PER_KWH, Series, SeriesKind
from .validate import check_zone

__all__ = ["DEFAULT_URL", "GBCarbonIntensityProvider"]

DEFAULT_URL = "https://api.carbonintensity.org.uk"


def _minute_z(value: datetime) -> str:
    return to_iso(value, "minutes")


@dataclass
class GBCarbonIntensityProvider:
    client: JsonClient
    now: Callable[[], datetime]
    region_id: int | None = None

    def __post_init__(self) -> None:
        self.zone = "GB" if self.region_id is None else f"GB-region-{self.region_id}"
        self.source = f"gb-carbon-intensity:{self.zone}"

    async def _periods(self, national: str, regional: str) -> list[Mapping[str, Any]]:
        path = national if self.region_id is None else regional
        body = await self.client.get_json(path)
        data = body.get("data") if isinstance(body, Mapping) else None
        if self.region_id is None:
            if not isinstance(data, list):
                raise BadSignalData(f"{self.source}: {path} has no data list")
            return data
        # Regional answers wrap the periods in a region object (a list of one, or an object).
        regions = data if isinstance(data, list) else [data]
        if not regions or not isinstance(regions[0], Mapping):
            raise BadSignalData(f"{self.source}: {path} has no region data")
        check_zone(str(self.region_id), regions[0].get("regionid"), self.source)
        periods = regions[0].get("data")
        if not isinstance(periods, list):
            raise BadSignalData(f"{self.source}: {path} has no periods")
        return periods

    def _points(self, periods: list[Mapping[str, Any]], prefer_actual: bool) -> list[tuple[datetime, float]]:
        points = []
        try:
            for p in periods:
                intensity = p["intensity"]
                value = intensity.get("actual") if prefer_actual else None
                if value is None:
                    value = intensity.get("forecast")
                if value is not None:
                    points.append((parse_timestamp(p["from"]), float(value)))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise BadSignalData(f"{self.source}: malformed period: {exc}") from exc
        return points

    def _regional_suffix(self) -> str:
        return f"/regionid/{self.region_id}"

    async def current(self) -> Series:
        periods = await self._periods("intensity", f"regional/regionid/{self.region_id}")
        points = self._points(periods, prefer_actual=True)
        if not points:
            raise BadSignalData(f"{self.source}: current period has no intensity")
        has_actual = self.region_id is None and periods[-1].get("intensity", {}).get("actual") is not None
        notes = () if has_actual else ("no measured value yet: this is the API's estimate for the period",)
        return Series(points=tuple(points[-1:]), unit=G_PER_KWH, source=self.source, observed_at=points[-1][0],
                      kind=SeriesKind.ACTUAL, zone=self.zone, notes=notes)

    async def forecast(self, horizon: timedelta) -> Series:
        now = ensure_utc(self.now())
        start = _minute_z(now)
        periods = await self._periods(f"intensity/{start}/fw48h", f"regional/intensity/{start}/fw48h{self._regional_suffix()}")
        points = [p for p in self._points(periods, prefer_actual=False) if p[0] < now + horizon]
        return Series(points=tuple(points), unit=G_PER_KWH, source=self.source, observed_at=now,
                      kind=SeriesKind.FORECAST, zone=self.zone, notes=("observed_at is fetch time (no generation time published)",))

    async def history(self, start: datetime, end: datetime) -> Series:
        points: list[tuple[datetime, float]] = []
        cursor = ensure_utc(start)
        while cursor < end:  # the API serves at most 14 days per request
            chunk_end = min(ensure_utc(end), cursor + timedelta(days=14))
            a, b = _minute_z(cursor), _minute_z(chunk_end)
            periods = await self._periods(f"intensity/{a}/{b}", f"regional/intensity/{a}/{b}{self._regional_suffix()}")
            points.extend(self._points(periods, prefer_actual=True))
            cursor = chunk_end
        observed = points[-1][0] if points else ensure_utc(self.now())
        return Series(points=tuple(points), unit=G_PER_KWH, source=self.source, observed_at=observed,
                      kind=SeriesKind.ACTUAL, zone=self.zone)

    async def aclose(self) -> None:
        await self.client.aclose()
