"""WattTime (API v3): marginal emissions (MOER) of one grid region, converted to gCO2eq/kWh.

Follows https://docs.watttime.org/: ``GET /login`` with HTTP basic auth returns a token (valid
30 minutes, refreshed here after 25 or on HTTP 401); ``GET /v3/forecast``, ``/v3/historical``
and ``/v3/signal-index`` with ``region`` and ``signal_type=co2_moer``. MOER comes in
lbs CO2/MWh; ×0.453592 gives g/kWh. Note MOER is *marginal*, not average, intensity.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from carbonshift.timefmt import ensure_utc, iso_z, parse_timestamp

from .errors import AuthenticationFailed, BadSignalData
from .credentials import Redacted
from .httpclient import JsonClient
from .series import G_PER_KWH, LBS_PER_MWH_TO_G_PER_KWH, Series, SeriesKind
from .validate import check_zone

__all__ = ["DEFAULT_URL", "WattTimeProvider"]

DEFAULT_URL = "https://api.watttime.org"
_TOKEN_LIFETIME = timedelta(minutes=25)
_UNIT_FACTORS = {"lbs_co2_per_mwh": LBS_PER_MWH_TO_G_PER_KWH, "g_co2_per_kwh": 1.0}


@dataclass
class WattTimeProvider:
    client: JsonClient
    region: str
    username: str
    password: Redacted
    now: Callable[[], datetime]
    signal_type: str = "co2_moer"
    _token: Redacted | None = field(default=None, init=False, repr=False)
    _token_expires: datetime | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.source = f"watttime:{self.region}"

    async def _login(self) -> Redacted:
        if self._token is not None and self._token_expires and self.now() < self._token_expires:
            return self._token
        body = await self.client.get_json("login", auth=(self.username, self.password.reveal()))
        token = body.get("token") if isinstance(body, Mapping) else None
        if not token:
            raise AuthenticationFailed(f"{self.source}: /login returned no token")
        self._token, self._token_expires = Redacted(str(token)), self.now() + _TOKEN_LIFETIME
        return self._token

    async def _get(self, path: str, **params: str) -> Mapping[str, Any]:
        full = {"region": self.region, "signal_type": self.signal_type, **params}
        for attempt in range(2):
            token = await self._login()
            try:
                body = await self.client.get_json(path, params=full, headers={"Authorization": f"Bearer {token.reveal()}"})
            except AuthenticationFailed:
                if attempt:
                    raise
                self._token = None  # expired early: log in again once
                continue
            if not isinstance(body, Mapping):
                raise BadSignalData(f"{self.source}: {path} returned {type(body).__name__}, expected an object")
            meta = body.get("meta") or {}
            check_zone(self.region, meta.get("region"), self.source)
            return body
        raise AssertionError("unreachable")

    def _series(self, body: Mapping[str, Any], path: str, kind: SeriesKind, observed: datetime | None) -> Series:
        meta = body.get("meta") or {}
        units = meta.get("units", "lbs_co2_per_mwh")
        if path.endswith("signal-index"):
            factor, unit = 1.0, "percent"
        elif units in _UNIT_FACTORS:
            factor, unit = _UNIT_FACTORS[units], G_PER_KWH
        else:
            raise BadSignalData(f"{self.source}: unknown units {units!r} in {path}")
        try:
            points = [(parse_timestamp(d["point_time"]), float(d["value"]) * factor) for d in body["data"]]
            generated = parse_timestamp(meta["generated_at"]) if meta.get("generated_at") else None
        except (KeyError, TypeError, ValueError) as exc:
            raise BadSignalData(f"{self.source}: malformed {path} response: {exc}") from exc
        if observed is None:
            observed = generated or (points[-1][0] if points else ensure_utc(self.now()))
        return Series(points=tuple(points), unit=unit, source=self.source, observed_at=observed, kind=kind,
                      zone=self.region, notes=("marginal operating emissions rate (MOER)",))

    async def current(self) -> Series:
        body = await self._get("v3/forecast", horizon_hours="0")
        series = self._series(body, "v3/forecast", SeriesKind.ACTUAL, None)
        if not series.points:
            raise BadSignalData(f"{self.source}: forecast has no current point")
        return series.replace(points=series.points[:1])

    async def forecast(self, horizon: timedelta) -> Series:
        hours = max(1, min(72, math.ceil(horizon / timedelta(hours=1))))
        body = await self._get("v3/forecast", horizon_hours=str(hours))
        return self._series(body, "v3/forecast", SeriesKind.FORECAST, None)

    async def history(self, start: datetime, end: datetime) -> Series:
        body = await self._get("v3/historical", start=iso_z(start), end=iso_z(end))
        series = self._series(body, "v3/historical", SeriesKind.ACTUAL, None)
        last = series.points[-1][0] if series.points else ensure_utc(self.now())
        return series.replace(observed_at=last)

    async def signal_index(self) -> Series:
        """WattTime's 0–100 percentile of the current MOER relative to the coming day."""
        body = await self._get("v3/signal-index")
        return self._series(body, "v3/signal-index", SeriesKind.ACTUAL, None)

    async def aclose(self) -> None:
        await self.client.aclose()
