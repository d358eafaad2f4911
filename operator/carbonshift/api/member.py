"""The ``MemberCluster`` resource: a cluster carbonshift may dispatch jobs to.

It says how to reach the cluster (a kubeconfig Secret on the hub), where its electricity comes
from (region, grid zone, which carbon-intensity provider to ask, on-site solar and battery
queries), and how much flexible work it takes (capacity, power budget, PUE, namespaces).
Cluster-scoped, because platform admins register clusters once for every namespace.
"""

from __future__ import annotations

import enum
from typing import Annotated, Final, Literal

from pydantic import AwareDatetime, ConfigDict, Field, JsonValue

from .common import (
    ApiModel,
    Condition,
    KindInfo,
    Name,
    PodSecurityLevel,
    PrinterColumn,
    Region,
    Resource,
    SecretKeyRef,
    SecretRef,
)

__all__ = [
    "DEFAULT_PUE",
    "Capacity",
    "CarbonAwareSdkSignal",
    "CarbonSignal",
    "ClusterPhase",
    "ElectricityMapsSignal",
    "EnergySource",
    "GbCarbonIntensitySignal",
    "KubeconfigSecretRef",
    "MemberCluster",
    "MemberClusterSpec",
    "MemberClusterStatus",
    "MemberConditionType",
    "MemberReason",
    "PrometheusSignal",
    "SignalObservation",
    "SignalProvider",
    "TraceSignal",
    "WattTimeSignal",
]

DEFAULT_PUE: Final = 1.2

_URL_MAX: Final = 2048
#: Most entries of spec.namespaceMapping (keeps its O(n^2) uniqueness rule within the CEL budget).
MAX_NAMESPACE_MAPPINGS: Final = 256
_DNS_LABEL: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_QUERY_MAX: Final = 4096


class SignalProvider(enum.StrEnum):
    """Where a cluster's grid carbon intensity comes from."""

    PROMETHEUS = "prometheus"
    ELECTRICITY_MAPS = "electricitymaps"
    WATTTIME = "watttime"
    GB_CARBON_INTENSITY = "gb-carbon-intensity"
    CARBON_AWARE_SDK = "carbon-aware-sdk"
    TRACE = "trace"


#: provider -> the camelCase name of the block that configures it.
PROVIDER_BLOCKS: Final[dict[SignalProvider, str]] = {
    SignalProvider.PROMETHEUS: "prometheus",
    SignalProvider.ELECTRICITY_MAPS: "electricityMaps",
    SignalProvider.WATTTIME: "wattTime",
    SignalProvider.GB_CARBON_INTENSITY: "gbCarbonIntensity",
    SignalProvider.CARBON_AWARE_SDK: "carbonAwareSdk",
    SignalProvider.TRACE: "trace",
}


#: An http(s) URL, bounded in length.
HttpUrl = Annotated[str, Field(max_length=_URL_MAX, pattern=r"^https?://")]


class PrometheusSignal(ApiModel):
    """Carbon intensity from PromQL queries against a Prometheus server."""

    url: HttpUrl = Field(description="Base URL of the Prometheus server, e.g. http://prometheus.monitoring:9090.")
    query: str = Field(
        min_length=1,
        max_length=_QUERY_MAX,
        description="PromQL returning the current intensity in gCO2eq/kWh for this cluster's zone.",
    )
    forecast_query: str | None = Field(
        default=None,
        max_length=_QUERY_MAX,
        description="PromQL whose range over the next hours is the intensity forecast (gCO2eq/kWh). Unset: no forecast, only the current value.",
    )


class ElectricityMapsSignal(ApiModel):
    """Carbon intensity (current and forecast) from the Electricity Maps API."""

    url: HttpUrl | None = Field(
        default=None,
        description="API base URL. Unset: https://api.electricitymap.org/v3.",
    )
    zone: str | None = Field(
        default=None, max_length=64, description="Electricity Maps zone. Unset: the cluster's spec.zone."
    )
    token_secret_ref: SecretKeyRef = Field(description="Secret key holding the API token (auth-token header).")


class WattTimeSignal(ApiModel):
    """Marginal emissions (current and forecast) from the WattTime API."""

    url: HttpUrl | None = Field(
        default=None,
        description="API base URL. Unset: https://api.watttime.org.",
    )
    region: str = Field(min_length=1, max_length=64, description="WattTime region (balancing authority), e.g. CAISO_NORTH.")
    credentials_secret_ref: SecretRef = Field(description="Secret with keys username and password for the WattTime account.")


class GbCarbonIntensitySignal(ApiModel):
    """Carbon intensity (current and 48 h forecast) from the GB Carbon Intensity API (no account needed)."""

    url: HttpUrl | None = Field(
        default=None,
        description="API base URL. Unset: https://api.carbonintensity.org.uk.",
    )
    region_id: int | None = Field(
        default=None,
        ge=1,
        le=18,
        description="Regional id: 1-14 for the distribution regions (e.g. 13 London), 15 England, 16 Scotland, 17 Wales, 18 GB. Unset: national figures.",
    )


class CarbonAwareSdkSignal(ApiModel):
    """Carbon intensity from a Green Software Foundation Carbon Aware SDK WebAPI."""

    url: HttpUrl = Field(description="Base URL of the Carbon Aware WebAPI, e.g. http://carbon-aware-api:8080.")
    location: str = Field(min_length=1, max_length=64, description="Location as the SDK knows it, e.g. westeurope.")


class TraceSignal(ApiModel):
    """Carbon intensity replayed from a CSV file (timestamps and gCO2eq/kWh); for demos, tests and offline use."""

    path: str = Field(
        min_length=1,
        max_length=1024,
        description="A bundled trace (DE, GB, ES, NO, BR, US-CAL-CISO, SE, US-MIDA-PJM, US-TEX-ERCO, US-NE-ISNE) or a CSV file inside the operator's data folder (operator setting dataDir; relative paths are taken inside it). Any other path is refused, and errors never quote the file.",
    )
    column: str | None = Field(
        default=None,
        max_length=128,
        description="Column holding the intensity in gCO2eq/kWh. Unset: detected from the file's header.",
    )
    anchor: AwareDatetime | None = Field(
        default=None,
        description="Instant of the trace (RFC 3339) that corresponds to the moment the operator starts; the trace is replayed from there in real time. Unset: the same day of year and time of day in the trace's year is used.",
    )


_PYTHON_BLOCKS: Final[dict[SignalProvider, str]] = {
    SignalProvider.PROMETHEUS: "prometheus",
    SignalProvider.ELECTRICITY_MAPS: "electricity_maps",
    SignalProvider.WATTTIME: "watt_time",
    SignalProvider.GB_CARBON_INTENSITY: "gb_carbon_intensity",
    SignalProvider.CARBON_AWARE_SDK: "carbon_aware_sdk",
    SignalProvider.TRACE: "trace",
}


def _provider_rules() -> list[JsonValue]:
    return [
        {
            "rule": f"self.provider != '{provider.value}' || has(self.{block})",
            "message": f"spec.carbonSignal.provider is {provider.value}: set spec.carbonSignal.{block} to configure it",
        }
        for provider, block in PROVIDER_BLOCKS.items()
    ]


class CarbonSignal(ApiModel):
    """Which provider gives this cluster's grid carbon intensity, and its settings.

    Set ``provider`` and the block of the same name; other blocks are ignored.
    """

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _provider_rules()})

    provider: SignalProvider = Field(
        description="prometheus, electricitymaps, watttime, gb-carbon-intensity, carbon-aware-sdk or trace. The block of the same name must be set."
    )
    prometheus: PrometheusSignal | None = Field(default=None, description="Settings for provider prometheus.")
    electricity_maps: ElectricityMapsSignal | None = Field(default=None, description="Settings for provider electricitymaps.")
    watt_time: WattTimeSignal | None = Field(default=None, description="Settings for provider watttime.")
    gb_carbon_intensity: GbCarbonIntensitySignal | None = Field(
        default=None, description="Settings for provider gb-carbon-intensity."
    )
    carbon_aware_sdk: CarbonAwareSdkSignal | None = Field(default=None, description="Settings for provider carbon-aware-sdk.")
    trace: TraceSignal | None = Field(default=None, description="Settings for provider trace.")

    def settings(self) -> ApiModel | None:
        """The block configuring the selected provider (None if it is missing)."""
        block: ApiModel | None = getattr(self, _PYTHON_BLOCKS[self.provider])
        return block


class EnergySource(ApiModel):
    """On-site energy: PromQL for solar production and battery state, read from a Prometheus."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.latitude) == has(self.longitude)",
                    "message": "spec.energy.latitude and spec.energy.longitude go together: set both (the site's "
                               "location, for the solar forecast) or neither",
                },
                {
                    "rule": "!has(self.panelTiltDegrees) || has(self.latitude)",
                    "message": "spec.energy.panelTiltDegrees shapes the clear-sky solar forecast, which needs the "
                               "site's location: set latitude and longitude too",
                },
                {
                    "rule": "!has(self.panelAzimuthDegrees) || has(self.panelTiltDegrees)",
                    "message": "spec.energy.panelAzimuthDegrees needs panelTiltDegrees (a horizontal panel faces "
                               "no direction)",
                },
            ]
        }
    )

    prometheus_url: HttpUrl = Field(description="Base URL of the Prometheus holding the site's energy metrics.")
    solar_power_query: str | None = Field(
        default=None, max_length=_QUERY_MAX, description="PromQL for current solar production in watts."
    )
    latitude: float | None = Field(
        default=None, ge=-90, le=90,
        description="The site's latitude in degrees (north positive). With longitude, solar is forecast from a "
                    "clear-sky model for the site scaled by the output of the last hours and days; without them the "
                    "current output is assumed to hold for one hour.",
    )
    longitude: float | None = Field(
        default=None, ge=-180, le=180, description="The site's longitude in degrees (east positive). See latitude."
    )
    panel_tilt_degrees: float | None = Field(
        default=None, ge=0, le=90,
        description="Tilt of the solar panels from horizontal in degrees (0 = flat, 90 = vertical), for the "
                    "clear-sky forecast's shape (a geometric model: beam on the tilted plane, isotropic sky diffuse, "
                    "ground reflection). Unset: horizontal. Needs latitude and longitude.",
    )
    panel_azimuth_degrees: float | None = Field(
        default=None, ge=0, le=360,
        description="Compass direction the tilted panels face, in degrees clockwise from north (90 = east, "
                    "180 = south, 270 = west). Unset: facing the equator (180 north of it, 0 south of it). Needs "
                    "panelTiltDegrees.",
    )
    battery_state_of_charge_query: str | None = Field(
        default=None, max_length=_QUERY_MAX, description="PromQL for the battery's state of charge in percent (0-100)."
    )
    battery_capacity_query: str | None = Field(
        default=None, max_length=_QUERY_MAX, description="PromQL for the battery's usable capacity in watt-hours."
    )
    battery_max_discharge_watts: float | None = Field(
        default=None, gt=0, description="Highest power the battery can deliver, in watts."
    )
    kepler_metrics: Literal["current", "legacy"] = Field(
        default="current",
        description="Which Kepler counters in this Prometheus hold pods' energy (measuredGrams): current = Kepler "
                    "0.10 and later (kepler_pod_cpu_joules_total, zones package + dram), legacy = Kepler 0.7 "
                    "(kepler_container_joules_total).",
    )


class Capacity(ApiModel):
    """How much flexible work the cluster takes at once."""

    max_concurrent_jobs: int | None = Field(
        default=None, ge=1, description="Most carbonshift Jobs running here at once. Unset: no limit."
    )
    power_budget_watts: float | None = Field(
        default=None, gt=0, description="Most power (W) the running carbonshift Jobs may draw together. Unset: no limit."
    )
    max_jobs_per_namespace: int | None = Field(
        default=None,
        ge=1,
        description="Most carbonshift Jobs of one hub namespace active here at once, so one namespace cannot take all of the cluster's capacity. Unset: no per-namespace limit.",
    )


class KubeconfigSecretRef(ApiModel):
    """The Secret on the hub that holds the member cluster's kubeconfig."""

    name: Name = Field(description="Name of the Secret.")
    namespace: Name = Field(description="Namespace of the Secret.")
    key: str = Field(default="kubeconfig", min_length=1, max_length=253, description="Key holding the kubeconfig.")


class MemberClusterSpec(ApiModel):
    """How to reach a cluster, where its electricity comes from, and how much work it takes."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.pue >= 1.0",
                    "message": "spec.pue (power usage effectiveness: facility power / IT power) must be at least 1.0, e.g. 1.2",
                }
            ]
        }
    )

    region: Region = Field(description="Region name jobs refer to in placement.allowedRegions, e.g. eu-de.")
    zone: str = Field(
        min_length=1,
        max_length=64,
        description="Grid zone whose carbon intensity applies, as Electricity Maps names it, e.g. DE, GB, US-CAL-CISO.",
    )
    kubeconfig_secret_ref: KubeconfigSecretRef | None = Field(
        default=None,
        description="Secret on the hub with a kubeconfig for this cluster. Unset: the hub cluster itself (in-cluster access).",
    )
    carbon_signal: CarbonSignal = Field(description="Where this cluster's grid carbon intensity comes from.")
    energy: EnergySource | None = Field(default=None, description="On-site solar and battery, if any.")
    capacity: Capacity = Field(
        default_factory=Capacity,
        description="Limits on concurrent carbonshift work.",
        json_schema_extra={"default": {}},
    )
    pue: float = Field(
        default=DEFAULT_PUE,
        ge=1.0,
        le=10.0,
        description="Power usage effectiveness of the data centre (facility power / IT power), at least 1.0.",
    )
    allowed_namespaces: list[Name] = Field(
        default_factory=list,
        max_length=256,
        description="Hub namespaces whose jobs may run here. Empty: every namespace.",
    )
    namespace_mapping: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_NAMESPACE_MAPPINGS,
        description="Hub namespace -> member namespace its jobs run in. A hub namespace not listed runs in the namespace of the same name, unless that name is taken by a mapping here (then its jobs do not run in this cluster). No two hub namespaces may end up in one member namespace.",
        json_schema_extra={
            "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 63, "pattern": _DNS_LABEL,
                                     "description": "The member namespace (a DNS label)."},
            "x-kubernetes-validations": [
                {
                    "rule": "self.all(hub, size(hub) <= 63 && hub.matches('" + _DNS_LABEL + "'))",
                    "message": "spec.namespaceMapping keys must be hub namespace names (DNS labels: lower-case letters, digits and '-', at most 63 characters)",
                },
                {
                    "rule": "self.all(hub, self.filter(other, self[other] == self[hub]).size() == 1)",
                    "message": "spec.namespaceMapping maps two hub namespaces to the same member namespace: each hub namespace needs a member namespace of its own",
                },
            ],
        },
    )
    pod_security_level: PodSecurityLevel | None = Field(
        default=None,
        description="Pod Security Standards level (baseline or restricted) the cluster admin requires of every job run here; a stricter level than the operator's setting wins. Unset: the operator's podSecurityLevel.",
    )
    create_namespaces: bool = Field(
        default=False,
        description="Whether the operator may create a missing member namespace, labelled with this cluster's Pod Security level (enforce, warn and audit). An existing namespace is never changed. false: a missing namespace makes dispatch wait (condition Dispatched=False, reason MemberNamespaceMissing) until the admin creates it.",
    )

    def member_namespace(self, hub_namespace: str) -> str:
        """The namespace in this cluster where jobs of ``hub_namespace`` run (same name unless mapped)."""
        return self.namespace_mapping.get(hub_namespace, hub_namespace)

    def serves_namespace(self, hub_namespace: str) -> bool:
        """Whether jobs of ``hub_namespace`` may run here: allowedNamespaces lets them, and their
        member namespace is their own (an unmapped name that a mapping gives to another hub
        namespace is taken)."""
        if self.allowed_namespaces and hub_namespace not in self.allowed_namespaces:
            return False
        if hub_namespace in self.namespace_mapping:
            return True
        return hub_namespace not in self.namespace_mapping.values()


class ClusterPhase(enum.StrEnum):
    """Whether the cluster can take work."""

    PENDING = "Pending"
    READY = "Ready"
    NOT_READY = "NotReady"


class MemberConditionType(enum.StrEnum):
    """Condition types a MemberCluster's status may carry."""

    READY = "Ready"
    SIGNALS_STALE = "SignalsStale"


class MemberReason(enum.StrEnum):
    """Reasons of a MemberCluster's conditions and Events."""

    REACHABLE = "Reachable"
    UNREACHABLE = "Unreachable"  # also the Warning Event when it stops answering
    READY = "Ready"  # the Event when it answers again
    FRESH = "Fresh"
    PROVIDER_ERROR = "ProviderError"


class SignalObservation(ApiModel):
    """The latest carbon-intensity reading for the cluster's zone."""

    intensity_g_per_kwh: float = Field(alias="intensity", ge=0, description="Grid carbon intensity in gCO2eq/kWh.")
    observed_at: AwareDatetime = Field(description="Time the reading refers to (RFC 3339).")
    source: str = Field(max_length=64, description="Provider that gave it, e.g. trace or electricitymaps.")


class MemberClusterStatus(ApiModel):
    """What the operator last observed of the cluster. Written by the operator only."""

    phase: ClusterPhase | None = Field(default=None, description="Pending, Ready or NotReady.")
    ready: bool | None = Field(default=None, description="Whether the cluster is reachable and can take jobs.")
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Ready, SignalsStale.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    last_seen: AwareDatetime | None = Field(default=None, description="When the cluster's API server last answered.")
    running_jobs: int | None = Field(default=None, ge=0, description="carbonshift Jobs running there (recounted at most every 10 s).")
    signal: SignalObservation | None = Field(default=None, description="The latest carbon-intensity reading.")
    observed_generation: int | None = Field(default=None, ge=0, description="The .metadata.generation this status reflects.")
    message: str | None = Field(default=None, max_length=4096, description="Human-readable summary, e.g. why it is not ready.")


class MemberCluster(Resource):
    """A cluster carbonshift may run jobs in, with its region, grid zone and energy sources."""

    kind_info = KindInfo(
        kind="MemberCluster",
        plural="memberclusters",
        singular="membercluster",
        scope="Cluster",
        short_names=("mc",),
        printer_columns=(
            PrinterColumn("Region", ".spec.region", description="Region name."),
            PrinterColumn("Zone", ".spec.zone", description="Grid zone."),
            PrinterColumn("Provider", ".spec.carbonSignal.provider", description="Carbon signal provider."),
            PrinterColumn("Ready", ".status.ready", type="boolean", description="Reachable and taking jobs."),
            PrinterColumn("Intensity", ".status.signal.intensity", type="number", description="Latest gCO2eq/kWh."),
            PrinterColumn("Running", ".status.runningJobs", type="integer", description="Jobs running now."),
            PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
        ),
    )

    kind: Literal["MemberCluster"] = "MemberCluster"
    spec: MemberClusterSpec = Field(description="How to reach the cluster and where its electricity comes from.")
    status: MemberClusterStatus = Field(default_factory=MemberClusterStatus, description="Observed state.")
