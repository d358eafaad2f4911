"""The operator's own configuration (a YAML file, e.g. the chart's ConfigMap, plus env overrides).

Cluster-wide policy defaults live here: a job without a CarbonPolicy in its namespace gets them.
"""

from __future__ import annotations

import os
from datetime import timedelta
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import yaml
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from carbonshift.api.duration import Duration
from carbonshift.api.policy import SignalFallback


class DefaultPolicy(BaseModel):
    """Operator-wide defaults, used where neither the job nor a CarbonPolicy says otherwise."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    max_delay: Duration = Field(default=timedelta(hours=24), alias="maxDelay")
    forecast_safety_margin: float = Field(default=0.1, ge=0, le=1, alias="forecastSafetyMargin")
    max_signal_age: Duration = Field(default=timedelta(hours=1), alias="maxSignalAge")
    signal_fallback: SignalFallback = Field(default=SignalFallback.RUN_NOW, alias="signalFallback")
    run_now_below_intensity: float | None = Field(default=None, ge=0, alias="runNowBelowIntensity")


@dataclass(frozen=True)
class AdminRules:
    """What the cluster admin (operator settings) allows any job template; a CarbonPolicy can only tighten it."""

    pod_security_level: str = "restricted"
    max_parallelism: int = 10
    max_completions: int = 100


class KueueSettings(BaseModel):
    """carbonshift as a Kueue AdmissionCheck controller and MultiKueue dispatcher (carbonshift/kueue).

    Off by default: the plain operator needs no Kueue CRDs. See docs/kueue.md."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    enabled: bool = Field(default=False, description="Run the Kueue rooms (needs Kueue's CRDs on the hub).")
    check_controller: str = Field(default="carbonshift.io/green-window", alias="checkController",
                                  description="AdmissionCheck spec.controllerName carbonshift answers for.")
    local_region: str | None = Field(default=None, alias="localRegion",
                                     description="Region whose signal times Workloads admitted on the hub itself "
                                                 "(no MultiKueue check). Unset: those are not delayed.")
    only: bool = Field(default=False, description="Run only the Kueue rooms, not the CarbonAwareJob scheduler "
                                                 "(e.g. a second operator dedicated to Kueue).")
    period_seconds: float = Field(default=2.0, gt=0, alias="periodSeconds",
                                  description="Longest pause between two passes over the Workloads.")


class OperatorSettings(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    namespace: str = Field(default="carbonshift-system", description="Namespace of the operator (lease, Secrets).")
    cycle_seconds: float = Field(default=5.0, gt=0, alias="cycleSeconds",
                                 description="Longest time between two scheduling cycles (real seconds).")
    slot_minutes: int = Field(default=15, ge=1, le=60, alias="slotMinutes", description="Planning grid step.")
    horizon_hours: float = Field(default=48.0, gt=0, le=168, alias="horizonHours",
                                 description="How far ahead forecasts are fetched and plans may reach.")
    forecast_policy: Literal["learned", "raw"] = Field(
        default="learned", alias="forecastPolicy",
        description="learned: plan on each provider's forecast corrected by its own recent errors, blended with "
                    "the built-in forecast, slots past its horizon valued from history; raw: on the forecast as it is.")
    keep_forecast_record: bool = Field(
        default=True, alias="keepForecastRecord",
        description="forecastPolicy learned: keep each region's record of its provider's forecasts in a ConfigMap "
                    "in the operator's namespace (label carbonshift.io/forecast-record), so a restart does not "
                    "forget the provider's errors; false: in memory only.")
    max_planning_horizon_hours: float = Field(
        default=168.0, gt=0, le=336, alias="maxPlanningHorizonHours",
        description="forecastPolicy learned: plans may reach past horizonHours up to the latest deadline of the jobs "
                    "planned, at most this far, on hours valued from history (bounds planning time). At or below "
                    "horizonHours, or with raw: plans end at horizonHours.")
    replan_min_improvement: float = Field(
        default=0.05, ge=0, le=1, alias="replanMinImprovement",
        description="Hysteresis: a waiting job's decision changes only if the new plan emits this fraction less.")
    member_probe_seconds: float = Field(default=10.0, gt=0, alias="memberProbeSeconds")
    clock_speed: float = Field(default=1.0, gt=0, alias="clockSpeed",
                               description="Accelerated clock for demos: simulated seconds per real second.")
    clock_origin: AwareDatetime | None = Field(default=None, alias="clockOrigin",
                                               description="Simulated time at start (default: now).")
    metrics_port: int = Field(default=8080, ge=0, le=65535, alias="metricsPort", description="0 disables /metrics.")
    metrics_host: str = Field(default="0.0.0.0", alias="metricsHost")
    leader_election: bool = Field(default=True, alias="leaderElection")
    lease_name: str = Field(default="carbonshift-leader", alias="leaseName")
    lease_seconds: float = Field(default=15.0, gt=1, alias="leaseSeconds")
    max_dispatch_per_cycle: int = Field(default=200, ge=1, alias="maxDispatchPerCycle",
                                        description="Dispatches in flight at most; under a burst the rest follow in the next cycles.")
    api_workers: int = Field(default=16, ge=1, le=64, alias="apiWorkers",
                             description="Concurrency of Kubernetes API calls: up to 4 x this many jobs have "
                                         "writes in flight at once.")
    data_dir: Path | None = Field(
        default=None, alias="dataDir",
        description="The only folder a MemberCluster's trace file may come from, besides the bundled traces "
                    "(DE, GB, ...). Unset: bundled traces only.")
    pod_security_level: Literal["baseline", "restricted"] = Field(
        default="restricted", alias="podSecurityLevel",
        description="Pod Security Standards level every job template must meet (a MemberCluster or a "
                    "CarbonPolicy may ask for a stricter one, never a weaker one).")
    max_parallelism: int = Field(default=10, ge=1, alias="maxParallelism",
                                 description="Largest spec.parallelism a job template may ask for.")
    max_completions: int = Field(default=100, ge=1, alias="maxCompletions",
                                 description="Largest spec.completions a job template may ask for.")
    hub_id: str = Field(default="", alias="hubId", max_length=63,
                        pattern=r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$",  # a label value
                        description="Identity of this hub on member Jobs (label carbonshift.io/hub); empty: the hub's "
                                    "kube-system namespace UID.")
    min_watts_per_cpu: float = Field(
        default=4.0, ge=0, alias="minWattsPerCpu",
        description="Floor on a job's power for budgets and emissions: requested CPUs x this many watts.")
    defaults: DefaultPolicy = Field(default_factory=DefaultPolicy)
    kueue: KueueSettings = Field(default_factory=KueueSettings)

    @property
    def admin_rules(self) -> AdminRules:
        return AdminRules(self.pod_security_level, self.max_parallelism, self.max_completions)

    @property
    def slot(self) -> timedelta:
        return timedelta(minutes=self.slot_minutes)

    @property
    def horizon(self) -> timedelta:
        return timedelta(hours=self.horizon_hours)

    @property
    def planning_horizon(self) -> timedelta:
        """How far the planning grid may reach: past ``horizon`` only where history values the hours (learned)."""
        if self.forecast_policy != "learned":
            return self.horizon
        return timedelta(hours=max(self.horizon_hours, self.max_planning_horizon_hours))


ENV_PREFIX = "CARBONSHIFT_"


def load_settings(path: Path | None = None, environ: dict[str, str] | None = None) -> OperatorSettings:
    """Reads the YAML file (if any), then ``CARBONSHIFT_<FIELD>`` env variables for scalar fields."""
    environ = dict(os.environ if environ is None else environ)
    data: dict[str, object] = {}
    if path is not None:
        loaded = yaml.safe_load(path.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ValueError(f"{path}: operator settings must be a mapping")
        data.update(loaded)
    for name, field in OperatorSettings.model_fields.items():
        key = ENV_PREFIX + name.upper()
        if key in environ and name not in ("defaults", "kueue"):
            data[field.alias or name] = environ[key]
    if environ.get(ENV_PREFIX + "KUEUE_ENABLED"):  # the one Kueue switch an env variable may flip
        current = data.get("kueue")
        kueue: dict[str, object] = dict(current) if isinstance(current, dict) else {}
        data["kueue"] = {**kueue, "enabled": environ[ENV_PREFIX + "KUEUE_ENABLED"]}
    return OperatorSettings.model_validate(data)

