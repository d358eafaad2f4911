"""Electricity Maps (API v3): latest, forecast and past carbon intensity of one zone.

Follows https://static.electricitymaps.com/api/docs/index.html (v3): ``GET
/v3/carbon-intensity/latest|forecast|history|past-range?zone=…``, token in the ``auth-token``
header. Values are gCO2eq/kWh (lifecycle by default).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from carbonshift.timefmt import ensure_utc, iso_z, parse_timestamp

from .credentials import Redacted
from .errors import BadSignalData
from .httpclient import JsonClient
from .series import G_PER_KWH, Series, SeriesKind
from .validate import check_zone

__all__ = ["DEFAULT_URL", "ElectricityMapsProvider"]

DEFAULT_URL = "https://api.electricitymap.org/v3"


@dataclass
class ElectricityMapsProvider:
    client: JsonClient
    zone: str
    token: Redacted | None
    now: Callable[[], datetime]

    def __post_init__(self) -> None:
        self.source = f"electricitymaps:{self.zone}"

    def _headers(self) -> dict[str, str]:
        return {"auth-token": self.token.reveal()} if self.token else {}

    async def _get(self, path: str, **params: str) -> Mapping[str, Any]:
        body = await self.client.get_json(path, params={"zone": self.zone, **params}, headers=self._headers())
        if not isinstance(body, Mapping):
            raise BadSignalData(f"{self.source}: {path} returned {type(body).__name__}, expected an object")
        check_zone(self.zone, body.get("zone"), self.source)
        return body

    def _points(self, entries: object, path: str) -> list[tuple[datetime, float]]:
        if not isinstance(entries, list):
            raise BadSignalData(f"{self.source}: {path} has no list of data points")
        try:
            return [
                (parse_timestamp(e["datetime"]), float(e["carbonIntensity"]))
                for e in entries
                if e.get("carbonIntensity") is not None
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise BadSignalData(f"{self.source}: malformed point in {path}: {exc}") from exc

    async def current(self) -> Series:
        body = await self._get("carbon-intensity/latest")
        points = self._points([body], "latest")
        if not points:
            raise BadSignalData(f"{self.source}: latest has no carbonIntensity")
        notes = ("estimated by Electricity Maps",) if body.get("isEstimated") else ()
        return Series(points=tuple(points), unit=G_PER_KWH, source=self.source, observed_at=points[-1][0],
                      kind=SeriesKind.ACTUAL, zone=self.zone, notes=notes)

    async def forecast(self, horizon: timedelta) -> Series:
        body = await self._get("carbon-intensity/forecast")
        now = ensure_utc(self.now())
        start = now.replace(minute=0, second=0, microsecond=0)
        points = [p for p in self._points(body.get("forecast"), "forecast") if start <= p[0] < now + horizon]
        try:
            observed = parse_timestamp(body["updatedAt"]) if body.get("updatedAt") else now
        except ValueError as exc:
            raise BadSignalData(f"{self.source}: bad updatedAt") from exc
        return Series(points=tuple(points), unit=G_PER_KWH, source=self.source, observed_at=observed,
                      kind=SeriesKind.FORECAST, zone=self.zone)

    async def history(self, start: datetime, end: datetime) -> Series:
        now = ensure_utc(self.now())
        if now - ensure_utc(start) <= timedelta(hours=24):
            body = await self._get("carbon-intensity/history")
            entries = body.get("history")
        else:  # past-range allows up to 10 days per request at hourly granularity
            entries = []
            cursor = ensure_utc(start)
            while cursor < end:
                chunk_end = min(ensure_utc(end), cursor + timedelta(days=10))
                body = await self._get("carbon-intensity/past-range", start=iso_z(cursor), end=iso_z(chunk_end))
                entries.extend(body.get("data") or [])
                cursor = chunk_end
        points = [p for p in self._points(entries, "history") if start <= p[0] < end]
        observed = points[-1][0] if points else now
        return Series(points=tuple(points), unit=G_PER_KWH, source=self.source, observed_at=observed,
                      kind=SeriesKind.ACTUAL, zone=self.zone)

    async def aclose(self) -> None:
        await self.client.aclose()
