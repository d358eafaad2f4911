"""Building providers from a MemberCluster's camelCase ``spec.carbonSignal`` / ``spec.energy``.

``build_provider`` is the only place that knows the CRD field names; it takes the Secret keys
``secret_refs`` names, already read (``resolve_secrets``: asynchronously, before building),
through a ``SecretReader`` and returns a ``GuardedProvider`` (cache, validation, fallback).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .carbonawaresdk import CarbonAwareSdkProvider
from .credentials import Redacted, SecretReader, secret_ref
from .electricitymaps import DEFAULT_URL as ELECTRICITYMAPS_URL
from .electricitymaps import ElectricityMapsProvider
from .errors import SignalConfigError
from .gbcarbon import DEFAULT_URL as GB_URL
from .gbcarbon import GBCarbonIntensityProvider
from .guarded import GuardedProvider
from .httpclient import JsonClient
from .kepler import KeplerMetrics, kepler_metrics
from .prometheus import PrometheusCarbonProvider, PrometheusEnergy, PrometheusSource, parse_duration
from .protocol import CarbonProvider
from .retry import RetryPolicy
from .trace import AnchoredTimeMap, CalendarTimeMap, TimeMap, TraceProvider, parse_anchor
from .tracedata import load_trace, resolve_member_trace
from .validate import Limits
from .watttime import DEFAULT_URL as WATTTIME_URL
from .watttime import WattTimeProvider

__all__ = ["PROVIDERS", "build_provider", "build_energy", "secret_refs"]

#: ``spec.carbonSignal.provider`` value -> name of its configuration block.
PROVIDERS: dict[str, str] = {
    "prometheus": "prometheus",
    "electricitymaps": "electricityMaps",
    "watttime": "wattTime",
    "gb-carbon-intensity": "gbCarbonIntensity",
    "carbon-aware-sdk": "carbonAwareSdk",
    "trace": "trace",
}


def _require(block: Mapping[str, Any], key: str, where: str) -> str:
    value = block.get(key)
    if value in (None, ""):
        raise SignalConfigError(f"carbonSignal.{where}.{key} is required")
    return str(value)


def _duration(config: Mapping[str, Any], key: str, default: timedelta) -> timedelta:
    value = config.get(key)
    if value in (None, ""):
        return default
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        raise SignalConfigError(f"carbonSignal.{key}: {exc}") from exc


def _secrets(secrets: SecretReader | None, where: str) -> SecretReader:
    if secrets is None:
        raise SignalConfigError(f"carbonSignal.{where} needs a Secret but no SecretReader was given")
    return secrets


def secret_refs(config: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(name, namespace, key)`` of every Secret key ``build_provider`` reads for ``config``.

    A config that is wrong in another way names nothing here: ``build_provider`` says what is wrong.
    """
    kind = str(config.get("provider") or "trace")
    block = config.get(PROVIDERS.get(kind, "")) or {}
    if not isinstance(block, Mapping):
        return []
    if kind == "electricitymaps" and block.get("tokenSecretRef"):
        return [secret_ref(block, "tokenSecretRef", "token")]
    if kind == "watttime":
        name, namespace, _ = secret_ref(block, "credentialsSecretRef", "username")
        return [(name, namespace, "username"), (name, namespace, "password")]
    return []


def build_provider(
    config: Mapping[str, Any],
    *,
    secrets: SecretReader | None,
    now: Callable[[], datetime],
    retry: RetryPolicy | None = None,
    guard: bool = True,
    data_dir: Path | None = None,
) -> CarbonProvider:
    """A provider for ``config`` (the ``carbonSignal`` dict), guarded unless ``guard=False``.

    Optional top-level keys: ``zone``, ``maxAge`` (default ``2h``), ``cacheTTL`` (default ``5m``)
    and ``timeoutSeconds`` (per HTTP request, default 10). ``data_dir`` is the admin's folder of
    trace files (operator setting ``dataDir``): a ``trace`` path is a bundled name or a file in it.
    """
    kind = str(config.get("provider") or "trace")
    if kind not in PROVIDERS:
        raise SignalConfigError(f"carbonSignal.provider {kind!r} is not one of {sorted(PROVIDERS)}")
    where = PROVIDERS[kind]
    block = config.get(where) or {}
    if not isinstance(block, Mapping):
        raise SignalConfigError(f"carbonSignal.{where} must be an object")
    timeout = float(config.get("timeoutSeconds") or 10.0)
    inner: CarbonProvider
    if kind == "prometheus":
        prom = PrometheusSource(_require(block, "url", where), now=now, timeout=timeout)
        if retry is not None:
            prom.retry = retry
        inner = PrometheusCarbonProvider(prom, _require(block, "query", where), block.get("forecastQuery") or None,
                                         zone=config.get("zone"))
    elif kind == "electricitymaps":
        token = None
        if block.get("tokenSecretRef"):
            token = Redacted(_secrets(secrets, where).read(*secret_ref(block, "tokenSecretRef", "token")))
        client = JsonClient(block.get("url") or ELECTRICITYMAPS_URL, name="electricitymaps", retry=retry, timeout=timeout)
        inner = ElectricityMapsProvider(client, _require(block, "zone", where), token, now)
    elif kind == "watttime":
        reader = _secrets(secrets, where)
        name, namespace, _ = secret_ref(block, "credentialsSecretRef", "username")
        username = reader.read(name, namespace, "username")
        password = Redacted(reader.read(name, namespace, "password"))
        client = JsonClient(block.get("url") or WATTTIME_URL, name="watttime", retry=retry, timeout=timeout)
        inner = WattTimeProvider(client, _require(block, "region", where), username, password, now)
    elif kind == "gb-carbon-intensity":
        region = block.get("regionId")
        client = JsonClient(block.get("url") or GB_URL, name="gb-carbon-intensity", retry=retry, timeout=timeout)
        inner = GBCarbonIntensityProvider(client, now, int(region) if region not in (None, "") else None)
    elif kind == "carbon-aware-sdk":
        client = JsonClient(_require(block, "url", where), name="carbon-aware-sdk", retry=retry, timeout=timeout)
        inner = CarbonAwareSdkProvider(client, _require(block, "location", where), now)
    else:
        inner = _build_trace(block, config, now, data_dir)
    if not guard:
        return inner
    limits = Limits(max_age=_duration(config, "maxAge", timedelta(hours=2)))
    return GuardedProvider(inner, now=now, ttl=_duration(config, "cacheTTL", timedelta(minutes=5)), limits=limits)


def _build_trace(block: Mapping[str, Any], config: Mapping[str, Any], now: Callable[[], datetime],
                 data_dir: Path | None) -> TraceProvider:
    path = str(block.get("path") or config.get("zone") or "DE")
    time_map: TimeMap = CalendarTimeMap()
    if block.get("anchor"):
        try:
            time_map = AnchoredTimeMap(parse_anchor(str(block["anchor"])), wall_start=now())
        except ValueError as exc:
            raise SignalConfigError(f"carbonSignal.trace.anchor: {exc}") from exc
    trace = load_trace(resolve_member_trace(path, data_dir), block.get("column") or None)
    return TraceProvider(trace, now=now, time_map=time_map, zone=config.get("zone") or block.get("zone"),
                         noise=float(block.get("forecastNoise") or 0.0), seed=int(block.get("seed") or 0))


def build_energy(energy: Mapping[str, Any] | None, *, now: Callable[[], datetime]) -> PrometheusEnergy | None:
    """On-site energy readers from ``spec.energy``; None when the cluster has no energy block."""
    if not energy:
        return None
    prom = PrometheusSource(str(energy.get("prometheusUrl") or _require(energy, "prometheusUrl", "energy")), now=now)
    max_discharge = energy.get("batteryMaxDischargeWatts")
    return PrometheusEnergy(
        prom,
        solar_power_query=energy.get("solarPowerQuery") or None,
        battery_state_of_charge_query=energy.get("batteryStateOfChargeQuery") or None,
        battery_capacity_query=energy.get("batteryCapacityQuery") or None,
        battery_max_discharge_watts=float(max_discharge) if max_discharge not in (None, "") else None,
        kepler=_kepler(energy.get("keplerMetrics")),
    )


def _kepler(line: Any) -> KeplerMetrics:
    try:
        return kepler_metrics(str(line) if line else None)
    except ValueError as exc:
        raise SignalConfigError(f"energy.keplerMetrics: {exc}") from exc
