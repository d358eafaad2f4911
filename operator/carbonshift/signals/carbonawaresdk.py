"""The Green Software Foundation Carbon Aware SDK WebAPI, self-hosted next to the operator.

Follows the SDK's WebAPI docs (github.com/Green-Software-Foundation/carbon-aware-sdk,
``casdk-docs/docs/overview/webapi.md``): ``GET /emissions/bylocation?location=&time=&toTime=``
returns ``[{location, time, rating, duration}]`` (rating in gCO2eq/kWh);
``GET /emissions/forecasts/current?location=&dataStartAt=&dataEndAt=`` returns
``[{generatedAt, requestedAt, location, dataStartAt, dataEndAt, windowSize,
optimalDataPoints, forecastData: [{location, timestamp, duration, value}]}]``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from carbonshift.timefmt import ensure_utc, iso_z, parse_timestamp

from .errors import BadSignalData
from .httpclient import JsonClient
from .series import G_PER_KWH, Series, SeriesKind
from .validate import check_zone

__all__ = ["CarbonAwareSdkProvider"]


@dataclass
class CarbonAwareSdkProvider:
    client: JsonClient
    location: str
    now: Callable[[], datetime]
    lookback: timedelta = timedelta(hours=2)

    def __post_init__(self) -> None:
        self.source = f"carbon-aware-sdk:{self.location}"

    async def _emissions(self, start: datetime, end: datetime) -> list[tuple[datetime, float]]:
        body = await self.client.get_json(
            "emissions/bylocation", params={"location": self.location, "time": iso_z(start), "toTime": iso_z(end)}
        )
        if not isinstance(body, list):
            raise BadSignalData(f"{self.source}: bylocation returned {type(body).__name__}, expected a list")
        points = []
        try:
            for entry in body:
                check_zone(self.location, entry.get("location"), self.source)
                points.append((parse_timestamp(entry["time"]), float(entry["rating"])))
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise BadSignalData(f"{self.source}: malformed emissions entry: {exc}") from exc
        return sorted(points)

    async def current(self) -> Series:
        now = ensure_utc(self.now())
        points = await self._emissions(now - self.lookback, now)
        if not points:
            raise BadSignalData(f"{self.source}: no emissions data in the last {self.lookback}")
        # All recent points are kept (newest last) so validation can see runs of zeros.
        return Series(points=tuple(points), unit=G_PER_KWH, source=self.source, observed_at=points[-1][0],
                      kind=SeriesKind.ACTUAL, zone=self.location)

    async def forecast(self, horizon: timedelta) -> Series:
        now = ensure_utc(self.now())
        body = await self.client.get_json(
            "emissions/forecasts/current",
            params={"location": self.location, "dataStartAt": iso_z(now), "dataEndAt": iso_z(now + horizon)},
        )
        if not isinstance(body, list) or not body or not isinstance(body[0], Mapping):
            raise BadSignalData(f"{self.source}: forecasts/current returned no forecast")
        fc: Mapping[str, Any] = body[0]
        check_zone(self.location, fc.get("location"), self.source)
        try:
            points = [(parse_timestamp(d["timestamp"]), float(d["value"])) for d in fc["forecastData"]]
            observed = parse_timestamp(fc["generatedAt"]) if fc.get("generatedAt") else now
        except (KeyError, TypeError, ValueError) as exc:
            raise BadSignalData(f"{self.source}: malformed forecast: {exc}") from exc
        return Series(points=tuple(points), unit=G_PER_KWH, source=self.source, observed_at=observed,
                      kind=SeriesKind.FORECAST, zone=self.location)

    async def history(self, start: datetime, end: datetime) -> Series:
        points = await self._emissions(start, end)
        observed = points[-1][0] if points else ensure_utc(self.now())
        return Series(points=tuple(points), unit=G_PER_KWH, source=self.source, observed_at=observed,
                      kind=SeriesKind.ACTUAL, zone=self.location)

    async def aclose(self) -> None:
        await self.client.aclose()
