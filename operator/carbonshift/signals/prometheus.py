"""Signals from a Prometheus server: grid intensity, solar, battery, and Kepler pod energy
(the counters per Kepler line are in kepler.py).

Talks to Prometheus' HTTP API directly (``GET /api/v1/query`` and ``/api/v1/query_range``)
with aiohttp (httpclient.LoopSession), as the other providers do; retries use the package's ``RetryPolicy`` and HTTP
errors are translated here, once. Queries are always evaluated at the injected clock's time,
which is also how tests query backfilled historical data.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any


from carbonshift.timefmt import ensure_utc

from .errors import (
    AuthenticationFailed,
    BadSignalData,
    ForecastNotSupported,
    ProviderUnavailable,
    RateLimited,
    SignalConfigError,
)
from .httpclient import TRANSPORT_ERRORS, LoopSession, reason, status_error
from .kepler import KEPLER_CURRENT, KeplerMetrics
from .retry import RetryPolicy, parse_retry_after
from .series import G_PER_KWH, JOULES, RATIO, WATT_HOURS, WATTS, Series, SeriesKind

__all__ = [
    "PrometheusSource",
    "PrometheusCarbonProvider",
    "PrometheusEnergy",
    "EnergySnapshot",
    "parse_duration",
    "pod_energy_joules",
]

log = logging.getLogger(__name__)

Sample = tuple[dict[str, str], datetime, float]

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})  # 503: Prometheus' query timeout / overload
_BAD_QUERY_STATUS = frozenset({400, 422})  # bad_data (parse error) / execution error


def parse_duration(text: str) -> timedelta:
    """Go/Prometheus-style ``1h30m``, ``90m``, ``3600s`` or bare seconds ``3600``."""
    text = text.strip()
    try:
        return timedelta(seconds=float(text))
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _DURATION.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"not a duration: {text!r}")
    return timedelta(seconds=total)


def _ts(value: float) -> datetime:
    return datetime.fromtimestamp(float(value), tz=timezone.utc)


def _api_error(status: int, body: bytes) -> str:
    """``HTTP 400 bad_data: <error>`` from a Prometheus error body, else the start of the body."""
    try:
        answer = json.loads(body)
        return f"HTTP {status} {answer['errorType']}: {answer['error']}"
    except (ValueError, KeyError, TypeError):
        return f"HTTP {status}: {body[:200].decode('utf-8', 'replace')}"


def _expect(data: Any, result_type: str, url: str, query: str) -> None:
    kind = data.get("resultType") if isinstance(data, dict) else None
    if kind != result_type:
        raise BadSignalData(f"prometheus {url}: {query} returned a {kind}, expected a {result_type}")


@dataclass
class PrometheusSource:
    """One Prometheus server, queried asynchronously at the injected clock's time."""

    url: str
    now: Callable[[], datetime]
    timeout: float = 10.0
    headers: Mapping[str, str] | None = None
    retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(attempts=3, base_seconds=0.2, cap_seconds=5.0))
    _session: LoopSession = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._session = LoopSession(self.timeout, self.headers)  # follows redirects, as requests did

    async def aclose(self) -> None:
        await self._session.aclose()

    async def _call(self, endpoint: str, what: str, params: Mapping[str, str | float]) -> Any:
        """``data`` of a successful API answer, with retries; errors become ``SignalError``s."""
        url = f"{self.url.rstrip('/')}/api/v1/{endpoint}"
        last: Exception | None = None
        last_status: int | None = None
        retry_after: float | None = None
        for attempt in range(self.retry.attempts):
            retry_after = None
            try:
                async with self._session.get().get(url, params=params) as response:
                    status, raw = response.status, await response.read()
                    error = status_error(response, _api_error(status, raw)) if status >= 300 else None
                    retry_after = parse_retry_after(response.headers.get("Retry-After"))
            except TRANSPORT_ERRORS as exc:  # connection errors, timeouts, too many redirects
                last, last_status, retry_after = exc, None, None
            else:
                if error is None:
                    try:
                        body = json.loads(raw)
                    except ValueError as exc:
                        raise BadSignalData(f"prometheus {self.url}: {endpoint} did not return JSON") from exc
                    if not isinstance(body, dict) or body.get("status") != "success" or "data" not in body:
                        raise BadSignalData(f"prometheus {self.url}: unexpected answer for {what}: {str(body)[:200]}")
                    return body["data"]
                last, last_status = error, status
                if status in _BAD_QUERY_STATUS:
                    raise SignalConfigError(f"prometheus {self.url}: bad query {what}: {reason(last)[:500]}") from last
                if status in (401, 403):
                    raise AuthenticationFailed(
                        f"prometheus {self.url}: {endpoint} refused our credentials (HTTP {status})") from last
                if status not in _RETRYABLE_STATUS:
                    raise ProviderUnavailable(f"prometheus {self.url}: {what} failed: {reason(last)}") from last
            log.info("prometheus %s: %s failed (%s), attempt %d", self.url, endpoint, last, attempt + 1)
            if attempt + 1 < self.retry.attempts:
                await self.retry.sleep(self.retry.delay_for(attempt, retry_after))
        assert last is not None
        message = f"prometheus {self.url}: {what} failed: {type(last).__name__}: {reason(last)}"
        if last_status == 429:
            raise RateLimited(message, retry_after=retry_after) from last
        raise ProviderUnavailable(message) from last

    async def instant(self, query: str, at: datetime | None = None) -> list[Sample]:
        """Instant vector at ``at`` (default now): ``[(labels, timestamp, value)]``."""
        when = ensure_utc(at or self.now())
        data = await self._call("query", query, {"query": query, "time": when.timestamp()})
        _expect(data, "vector", self.url, query)
        try:
            return [(dict(r["metric"]), _ts(r["value"][0]), float(r["value"][1])) for r in data["result"]]
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise BadSignalData(f"prometheus {self.url}: unexpected result for {query}") from exc

    async def range(self, query: str, start: datetime, end: datetime, step: timedelta) -> list[tuple[dict[str, str], list[tuple[datetime, float]]]]:
        """Range query: ``[(labels, [(timestamp, value), ...])]``."""
        # Whole seconds, as before: Prometheus aligns the returned samples to start + k * step.
        params: dict[str, str | float] = {
            "query": query, "start": round(ensure_utc(start).timestamp()), "end": round(ensure_utc(end).timestamp()),
            "step": f"{max(1, int(step.total_seconds()))}s",
        }
        data = await self._call("query_range", query, params)
        _expect(data, "matrix", self.url, query)
        try:
            return [(dict(r["metric"]), [(_ts(t), float(v)) for t, v in r["values"]]) for r in data["result"]]
        except (KeyError, TypeError, ValueError) as exc:
            raise BadSignalData(f"prometheus {self.url}: unexpected range result for {query}") from exc

    async def latest(self, query: str, source: str) -> tuple[datetime, float]:
        """The single value of ``query`` now and the time it was sampled.

        ``timestamp(query)`` gives the real sample time for a plain selector; for computed
        expressions Prometheus returns the evaluation time (staleness is then bounded by its
        5-minute lookback).
        """
        values, stamps = await asyncio.gather(self.instant(query), self.instant(f"timestamp({query})"))
        finite = [s for s in values if math.isfinite(s[2])]
        if not values:
            raise BadSignalData(
                f"{source}: query returned no series: the metric is missing or has had no sample "
                "within Prometheus' lookback (5 minutes by default); query must return exactly one series"
            )
        if len(values) != 1:
            labels = [s[0] for s in values[:3]]
            raise BadSignalData(f"{source}: query must return exactly one series, got {len(values)} {labels}")
        if not finite:
            raise BadSignalData(f"{source}: value is not finite")
        observed = _ts(stamps[0][2]) if stamps else values[0][1]
        return observed, values[0][2]


@dataclass
class PrometheusCarbonProvider:
    """Grid intensity from PromQL (``query``) and an optional forecast query.

    ``forecast_query`` either returns one series per horizon labelled ``horizon`` (``"3h"``,
    ``"10800"``) – the exporter's ``carbonshift_grid_intensity_forecast_g_per_kwh`` – in which
    case each value is for sample time + horizon; or returns a series whose samples carry future
    timestamps (e.g. backfilled), read with a range query from now over the horizon.
    """

    prom: PrometheusSource
    query: str
    forecast_query: str | None = None
    zone: str | None = None
    history_step: timedelta = timedelta(minutes=15)
    forecast_step: timedelta = timedelta(hours=1)
    unit: str = G_PER_KWH

    def __post_init__(self) -> None:
        self.source = f"prometheus:{self.zone or self.query}"
        self.now = self.prom.now

    async def current(self) -> Series:
        observed, value = await self.prom.latest(self.query, self.source)
        return Series(points=((observed, value),), unit=self.unit, source=self.source, observed_at=observed,
                      kind=SeriesKind.ACTUAL, zone=self.zone)

    async def forecast(self, horizon: timedelta) -> Series:
        if not self.forecast_query:
            raise ForecastNotSupported(f"{self.source}: no forecastQuery configured")
        now = ensure_utc(self.now())
        samples = await self.prom.instant(self.forecast_query, now)
        if samples and all("horizon" in s[0] for s in samples):
            stamps = await self.prom.instant(f"timestamp({self.forecast_query})", now)
            by_labels = {tuple(sorted(s[0].items())): s[2] for s in stamps}
            points: dict[datetime, float] = {}
            observed = now
            for labels, _, value in samples:
                try:
                    ahead = parse_duration(labels["horizon"])
                except ValueError as exc:
                    raise BadSignalData(f"{self.source}: bad horizon label {labels['horizon']!r}") from exc
                sampled = _ts(by_labels.get(tuple(sorted(labels.items())), now.timestamp()))
                observed = min(observed, sampled)
                if ahead <= horizon and math.isfinite(value):
                    points[sampled + ahead] = value
            return Series(points=tuple(sorted(points.items())), unit=self.unit, source=self.source,
                          observed_at=observed, kind=SeriesKind.FORECAST, zone=self.zone)
        ranged = await self.prom.range(self.forecast_query, now, now + horizon, self.forecast_step)
        if len(ranged) > 1:
            raise BadSignalData(f"{self.source}: forecast query must return one series or a horizon label")
        values = ranged[0][1] if ranged else []
        if not values:
            raise ForecastNotSupported(f"{self.source}: forecast query returned no data for the next {horizon}")
        return Series(points=tuple(values), unit=self.unit, source=self.source, observed_at=now,
                      kind=SeriesKind.FORECAST, zone=self.zone, notes=("future-timestamped samples",))

    async def history(self, start: datetime, end: datetime) -> Series:
        ranged = await self.prom.range(self.query, start, end, self.history_step)
        if len(ranged) > 1:
            raise BadSignalData(f"{self.source}: query must return exactly one series, got {len(ranged)}")
        values = ranged[0][1] if ranged else []
        observed = values[-1][0] if values else ensure_utc(self.now())
        return Series(points=tuple(values), unit=self.unit, source=self.source, observed_at=observed,
                      kind=SeriesKind.ACTUAL, zone=self.zone)

    async def aclose(self) -> None:
        await self.prom.aclose()


@dataclass(frozen=True)
class EnergySnapshot:
    """On-site energy at one moment; each value keeps its own observation time."""

    solar_power: Series | None  # W
    battery_state_of_charge: Series | None  # ratio 0..1
    battery_capacity: Series | None  # Wh
    battery_max_discharge_watts: float | None


@dataclass
class PrometheusEnergy:
    """Solar power, battery state of charge and capacity from the ``spec.energy`` queries."""

    prom: PrometheusSource
    solar_power_query: str | None = None
    battery_state_of_charge_query: str | None = None
    battery_capacity_query: str | None = None
    battery_max_discharge_watts: float | None = None
    kepler: KeplerMetrics = KEPLER_CURRENT  # which Kepler line's counters hold pod energy

    async def _one(self, query: str | None, unit: str, name: str) -> Series | None:
        if not query:
            return None
        observed, value = await self.prom.latest(query, f"prometheus:{name}")
        notes: tuple[str, ...] = ()
        if unit == RATIO and value > 1.0:
            if value > 100.0:
                raise BadSignalData(f"prometheus:{name}: state of charge {value} is neither a ratio nor a percentage")
            value, notes = value / 100.0, ("query returned a percentage; divided by 100",)
        if value < 0:
            raise BadSignalData(f"prometheus:{name}: negative value {value}")
        return Series(points=((observed, value),), unit=unit, source=f"prometheus:{name}", observed_at=observed, notes=notes)

    async def solar_power_watts(self) -> Series | None:
        return await self._one(self.solar_power_query, WATTS, "solar")

    async def battery_state_of_charge(self) -> Series | None:
        return await self._one(self.battery_state_of_charge_query, RATIO, "battery-soc")

    async def battery_capacity_wh(self) -> Series | None:
        return await self._one(self.battery_capacity_query, WATT_HOURS, "battery-capacity")

    async def snapshot(self) -> EnergySnapshot:
        solar, soc, capacity = await asyncio.gather(
            self.solar_power_watts(), self.battery_state_of_charge(), self.battery_capacity_wh()
        )
        return EnergySnapshot(solar, soc, capacity, self.battery_max_discharge_watts)

    async def solar_history(self, start: datetime, end: datetime, step: timedelta = timedelta(minutes=5)) -> Series:
        if not self.solar_power_query:
            raise SignalConfigError("no solarPowerQuery configured")
        ranged = await self.prom.range(self.solar_power_query, start, end, step)
        values = ranged[0][1] if len(ranged) == 1 else []
        observed = values[-1][0] if values else ensure_utc(end)
        return Series(points=tuple(values), unit=WATTS, source="prometheus:solar", observed_at=observed)

    async def aclose(self) -> None:
        await self.prom.aclose()


def _label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


async def pod_energy_joules(
    prom: PrometheusSource,
    namespace: str,
    pod: str,
    start: datetime,
    end: datetime,
    *,
    kepler: KeplerMetrics = KEPLER_CURRENT,
    pod_is_regex: bool = False,
) -> Series:
    """Energy a pod used in ``[start, end)`` from Kepler's counters (``kepler``: which Kepler line), in joules.

    Evaluates ``sum(increase(metric{ns, pod, zones}[end-start]))`` at ``end``. ``increase``
    extrapolates to the window edges; a pod that started inside the window is counted from
    its first sample. Raises ``BadSignalData`` when the counter has no samples for the pod.
    """
    window = int((ensure_utc(end) - ensure_utc(start)).total_seconds())
    if window <= 0:
        raise ValueError("end must be after start")
    # ``pod_is_regex``: all pods of a Job (``<job>-.*``) without listing them in the member cluster.
    pod_label = kepler.pod_label
    pod_match = f'{pod_label}=~"{pod}"' if pod_is_regex else f'{pod_label}="{_label_value(pod)}"'
    selectors = [f'{kepler.namespace_label}="{_label_value(namespace)}"', pod_match, *kepler.selectors]
    metric = kepler.metric
    query = f"sum(increase({metric}{{{','.join(selectors)}}}[{window}s]))"
    samples = await prom.instant(query, end)
    if not samples:
        raise BadSignalData(f"prometheus: no {metric} samples for pod {namespace}/{pod} in [{start}, {end})")
    return Series(points=((ensure_utc(end), samples[0][2]),), unit=JOULES, source=f"prometheus:{metric}",
                  observed_at=ensure_utc(end), notes=(query,))
