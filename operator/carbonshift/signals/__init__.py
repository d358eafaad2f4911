"""Energy signals: grid carbon intensity (current + forecast), solar and battery, pod energy.

One protocol (``CarbonProvider``), one value type (``Series``), one exception tree
(``SignalError``), and providers for Prometheus, Electricity Maps, WattTime, the GB Carbon
Intensity API, the Carbon Aware SDK WebAPI and CSV traces. ``build_provider`` turns a
MemberCluster's ``spec.carbonSignal`` into a guarded provider. Everything is asyncio.
"""

from __future__ import annotations

from .cache import TTLCache
from .carbonawaresdk import CarbonAwareSdkProvider
from .credentials import (
    KubernetesSecretReader,
    Redacted,
    SecretGetter,
    SecretReader,
    SecretSource,
    StaticSecretReader,
    read_secret_key,
    resolve_secrets,
)
from .builtin import builtin_forecast
from .electricitymaps import ElectricityMapsProvider
from .errors import (
    AuthenticationFailed,
    BadSignalData,
    ForecastNotSupported,
    ProviderUnavailable,
    RateLimited,
    SignalConfigError,
    SignalError,
    StaleSignal,
)
from .factory import PROVIDERS, build_energy, build_provider, secret_refs
from .gbcarbon import GBCarbonIntensityProvider
from .guarded import GuardedProvider
from .httpclient import JsonClient
from .profile import profile_forecast, weekly_profile
from .prometheus import (
    EnergySnapshot,
    PrometheusCarbonProvider,
    PrometheusEnergy,
    PrometheusSource,
    parse_duration,
    pod_energy_joules,
)
from .protocol import CarbonProvider
from .retry import RetryPolicy
from .series import G_PER_KWH, LBS_PER_MWH_TO_G_PER_KWH, Series, SeriesKind, to_slots
from .trace import AnchoredTimeMap, CalendarTimeMap, TraceProvider
from .tracedata import (
    KNOWN_TRACES,
    RESEARCH_DATA_ENV,
    BundledTrace,
    load_trace,
    research_data_dir,
    resolve_member_trace,
    resolve_trace_path,
)
from .validate import Issue, Limits, check_zone, ensure_valid, inspect
from .watttime import WattTimeProvider

__all__ = [
    "AnchoredTimeMap",
    "AuthenticationFailed",
    "BadSignalData",
    "CalendarTimeMap",
    "CarbonAwareSdkProvider",
    "CarbonProvider",
    "BundledTrace",
    "ElectricityMapsProvider",
    "EnergySnapshot",
    "ForecastNotSupported",
    "G_PER_KWH",
    "GBCarbonIntensityProvider",
    "GuardedProvider",
    "Issue",
    "JsonClient",
    "KNOWN_TRACES",
    "KubernetesSecretReader",
    "LBS_PER_MWH_TO_G_PER_KWH",
    "Limits",
    "PROVIDERS",
    "PrometheusCarbonProvider",
    "PrometheusEnergy",
    "PrometheusSource",
    "RESEARCH_DATA_ENV",
    "ProviderUnavailable",
    "RateLimited",
    "Redacted",
    "RetryPolicy",
    "SecretGetter",
    "SecretReader",
    "SecretSource",
    "Series",
    "SeriesKind",
    "SignalConfigError",
    "SignalError",
    "StaleSignal",
    "StaticSecretReader",
    "TTLCache",
    "TraceProvider",
    "WattTimeProvider",
    "build_energy",
    "build_provider",
    "check_zone",
    "ensure_valid",
    "inspect",
    "load_trace",
    "parse_duration",
    "pod_energy_joules",
    "profile_forecast",
    "builtin_forecast",
    "read_secret_key",
    "resolve_secrets",
    "secret_refs",
    "research_data_dir",
    "resolve_member_trace",
    "resolve_trace_path",
    "to_slots",
    "weekly_profile",
]
