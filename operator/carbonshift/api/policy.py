"""The ``CarbonPolicy`` resource: a namespace's defaults and limits for carbon-aware jobs.

A CarbonAwareJob names a policy or gets its namespace's policy called ``default``; where neither
exists the operator's configuration supplies cluster-wide defaults. The defaults written here are
also the CRD's defaults, so what ``kubectl get -o yaml`` shows is what the operator uses.
"""

from __future__ import annotations

import enum
from datetime import timedelta
from typing import Final, Literal

from pydantic import ConfigDict, Field

from .common import MAX_REGIONS, ApiModel, KindInfo, PodSecurityLevel, PrinterColumn, Region, Resource
from .duration import Duration, duration_cel_rule, format_duration

__all__ = [
    "DEFAULT_MAX_SIGNAL_AGE",
    "DEFAULT_POLICY_NAME",
    "CarbonPolicy",
    "CarbonPolicySpec",
    "CarbonPolicyStatus",
    "DEFAULT_BATTERY_RESERVE_PERCENT",
    "SignalFallback",
]

#: The policy a job gets when it names none.
DEFAULT_POLICY_NAME: Final = "default"
#: Signals older than this are stale unless the policy says otherwise.
DEFAULT_MAX_SIGNAL_AGE: Final = timedelta(hours=1)
#: A site battery is kept at least this full for flexible jobs unless the policy says otherwise.
DEFAULT_BATTERY_RESERVE_PERCENT: Final = 20


class SignalFallback(enum.StrEnum):
    """What to do when a region's carbon signal is missing or older than maxSignalAge."""

    RUN_NOW = "runNow"
    LAST_FORECAST = "lastForecast"
    HISTORICAL_PROFILE = "historicalProfile"


class CarbonPolicySpec(ApiModel):
    """Defaults and limits for the CarbonAwareJobs of one namespace."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.allowedRegions) || size(self.allowedRegions) > 0",
                    "message": "spec.allowedRegions must not be empty: list at least one region, or leave it out to allow every region",
                },
            ]
        }
    )

    max_delay: Duration | None = Field(
        default=None,
        description="Longest a job may be held back after creation, as a Go duration (e.g. 12h). A job's own deadline or maxDelay is capped by it. Unset: no limit beyond the job's own.",
        json_schema_extra={"x-kubernetes-validations": [duration_cel_rule("spec.maxDelay")]},
    )
    allowed_regions: list[Region] | None = Field(
        default=None,
        max_length=MAX_REGIONS,
        description="Regions jobs of this namespace may run in (a job may narrow this further). Unset: every region; if given, it must not be empty.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    run_now_below_intensity: float | None = Field(
        default=None,
        ge=0,
        description="Run a job at once, without shifting, when the current intensity is below this many gCO2eq/kWh.",
    )
    battery_reserve_percent: float = Field(
        default=DEFAULT_BATTERY_RESERVE_PERCENT,
        ge=0,
        le=100,
        description="State of charge (percent) below which this namespace's jobs draw no energy from a site's battery (the planner counts only the energy above it).",
    )
    forecast_safety_margin: float = Field(
        default=0.1,
        ge=0,
        le=1,
        description="Extra time, as a fraction of the estimated duration, kept free before the deadline to absorb duration and forecast errors (0.1 = 10%).",
    )
    signal_fallback: SignalFallback = Field(
        default=SignalFallback.RUN_NOW,
        description="When signals are missing or stale: runNow (start at once), lastForecast (plan on the last forecast received) or historicalProfile (plan on the region's typical day).",
    )
    max_signal_age: Duration = Field(
        default=DEFAULT_MAX_SIGNAL_AGE,
        description="A signal older than this (Go duration) counts as stale and the fallback applies.",
        json_schema_extra={
            "default": format_duration(DEFAULT_MAX_SIGNAL_AGE),  # the wire form, not ISO 8601
            "x-kubernetes-validations": [duration_cel_rule("spec.maxSignalAge")],
        },
    )
    dry_run: bool = Field(
        default=False,
        description="Decide and report in status, but never delay or move a job: it runs at once in its preferred region.",
    )
    pod_security_level: PodSecurityLevel | None = Field(
        default=None,
        description="Pod Security Standards level (baseline or restricted) this namespace's job templates must meet. It can only tighten the level the cluster admin set (operator setting and MemberCluster): the stricter one applies. Unset: the admin's level.",
    )


class CarbonPolicyStatus(ApiModel):
    """What the operator observed about this policy."""

    observed_generation: int | None = Field(default=None, ge=0, description="The .metadata.generation last read.")
    jobs: int | None = Field(default=None, ge=0, description="Number of CarbonAwareJobs currently governed by this policy.")


class CarbonPolicy(Resource):
    """A namespace's defaults and limits for carbon-aware jobs."""

    kind_info = KindInfo(
        kind="CarbonPolicy",
        plural="carbonpolicies",
        singular="carbonpolicy",
        scope="Namespaced",
        # Not "cpol": Kyverno's ClusterPolicy has it. "cspol" is used by none of Kyverno, Gatekeeper,
        # Calico, Cilium, Istio or Kueue.
        short_names=("cspol",),
        printer_columns=(
            PrinterColumn("Fallback", ".spec.signalFallback", description="What happens when signals are missing or stale."),
            PrinterColumn("Max-Delay", ".spec.maxDelay", description="Longest delay allowed."),
            PrinterColumn("Dry-Run", ".spec.dryRun", type="boolean", description="Decide but never delay."),
            PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
        ),
    )

    kind: Literal["CarbonPolicy"] = "CarbonPolicy"
    spec: CarbonPolicySpec = Field(default_factory=CarbonPolicySpec, description="The namespace's defaults and limits.")
    status: CarbonPolicyStatus = Field(default_factory=CarbonPolicyStatus, description="Observed state.")
