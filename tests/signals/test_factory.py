"""``build_provider`` from a MemberCluster's camelCase ``spec.carbonSignal``."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from carbonshift.signals import (
    PROVIDERS,
    CalendarTimeMap,
    CarbonAwareSdkProvider,
    CarbonProvider,
    ElectricityMapsProvider,
    GBCarbonIntensityProvider,
    GuardedProvider,
    PrometheusCarbonProvider,
    SignalConfigError,
    StaticSecretReader,
    TraceProvider,
    WattTimeProvider,
    build_energy,
    build_provider,
    secret_refs,
)
from carbonshift.signals.trace import AnchoredTimeMap

NOW = datetime(2024, 5, 1, 12, tzinfo=timezone.utc)
SECRETS = StaticSecretReader({("ops", "s"): {"token": "tok", "username": "u", "password": "p"}})

CASES: list[tuple[dict[str, Any], type]] = [
    ({"provider": "prometheus", "prometheus": {"url": "http://prom:9090", "query": "x", "forecastQuery": "y"}},
     PrometheusCarbonProvider),
    ({"provider": "electricitymaps", "electricityMaps": {
        "zone": "DE", "tokenSecretRef": {"name": "s", "namespace": "ops", "key": "token"}}}, ElectricityMapsProvider),
    ({"provider": "watttime", "wattTime": {"region": "CAISO_NORTH",
                                           "credentialsSecretRef": {"name": "s", "namespace": "ops"}}}, WattTimeProvider),
    ({"provider": "gb-carbon-intensity", "gbCarbonIntensity": {"regionId": 13}}, GBCarbonIntensityProvider),
    ({"provider": "carbon-aware-sdk", "carbonAwareSdk": {"url": "http://casdk", "location": "eastus"}},
     CarbonAwareSdkProvider),
    ({"provider": "trace", "trace": {"path": "GB", "anchor": "2022-01-06T00:00:00Z"}},
     TraceProvider),
]


def test_every_documented_provider_is_covered() -> None:
    assert {c["provider"] for c, _ in CASES} == set(PROVIDERS)


@pytest.mark.parametrize(("config", "kind"), CASES, ids=[c["provider"] for c, _ in CASES])
def test_builds_guarded_provider(config: dict[str, Any], kind: type) -> None:
    p = build_provider(config, secrets=SECRETS, now=lambda: NOW)
    assert isinstance(p, GuardedProvider) and isinstance(p.inner, kind) and isinstance(p, CarbonProvider)
    assert "tok" not in p.source and "p" != p.source
    raw = build_provider(config, secrets=SECRETS, now=lambda: NOW, guard=False)
    assert isinstance(raw, kind)


def test_trace_anchor_and_default_calendar_map() -> None:
    anchored = build_provider(CASES[-1][0], secrets=None, now=lambda: NOW, guard=False)
    assert isinstance(anchored, TraceProvider) and isinstance(anchored.time_map, AnchoredTimeMap)
    default = build_provider({"provider": "trace"}, secrets=None, now=lambda: NOW, guard=False)
    assert isinstance(default, TraceProvider) and isinstance(default.time_map, CalendarTimeMap)


def test_max_age_and_cache_ttl() -> None:
    p = build_provider({"provider": "trace", "maxAge": "30m", "cacheTTL": "1m"}, secrets=None, now=lambda: NOW)
    assert isinstance(p, GuardedProvider) and p.limits.max_age.total_seconds() == 1800
    assert p.ttl.total_seconds() == 60


@pytest.mark.parametrize(("config", "message"), [
    ({"provider": "solar-oracle"}, "not one of"),
    ({"provider": "prometheus", "prometheus": {"query": "x"}}, "prometheus.url"),
    ({"provider": "electricitymaps", "electricityMaps": {"zone": "DE", "tokenSecretRef": {"name": "missing"}}},
     "not found"),
    ({"provider": "watttime", "wattTime": {"region": "X"}}, "credentialsSecretRef"),
    ({"provider": "carbon-aware-sdk", "carbonAwareSdk": {"url": "http://x"}}, "location"),
    ({"provider": "trace", "maxAge": "a while"}, "maxAge"),
    ({"provider": "trace", "trace": {"anchor": "last tuesday"}}, "anchor"),
])
def test_config_errors(config: dict[str, Any], message: str) -> None:
    with pytest.raises(SignalConfigError, match=message):
        build_provider(config, secrets=SECRETS, now=lambda: NOW)


def test_secret_needed_but_no_reader() -> None:
    with pytest.raises(SignalConfigError, match="SecretReader"):
        build_provider(CASES[1][0], secrets=None, now=lambda: NOW)


def test_build_energy() -> None:
    assert build_energy(None, now=lambda: NOW) is None
    energy = build_energy({"prometheusUrl": "http://prom:9090", "solarPowerQuery": "s"}, now=lambda: NOW)
    assert energy is not None and energy.solar_power_query == "s" and energy.battery_capacity_query is None


@pytest.mark.parametrize(("config", "kind"), CASES, ids=[c["provider"] for c, _ in CASES])
def test_secret_refs_name_exactly_the_keys_the_provider_reads(config: dict[str, Any], kind: type) -> None:
    """The operator reads these (asynchronously) before building; the build then reads nothing else."""
    read: list[tuple[str, str, str]] = []

    class Recording:
        def read(self, name: str, namespace: str, key: str) -> str:
            read.append((name, namespace, key))
            return SECRETS.read(name, namespace, key)

    build_provider(config, secrets=Recording(), now=lambda: NOW)
    assert secret_refs(config) == read
