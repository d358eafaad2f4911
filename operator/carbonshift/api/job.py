"""The ``CarbonAwareJob`` resource: a batch/v1 Job template plus the freedom to move it.

The spec says how much freedom the job has (deadline or maximum delay, allowed regions, whether
it may be suspended); the status records what the operator decided and why, what it dispatched,
and the emissions it expects. The CEL rules here are what the API server checks on every write.
"""

from __future__ import annotations

import enum
from typing import Any, Final, Literal

from pydantic import AwareDatetime, ConfigDict, Field, model_validator

from .common import (
    MAX_REGIONS,
    ApiModel,
    Condition,
    KindInfo,
    Name,
    PrinterColumn,
    Region,
    Resource,
)
from .duration import Duration, duration_cel_rule

__all__ = [
    "HISTORY_LIMIT",
    "TEMPLATE_FIXED_RULE",
    "TERMINAL_PHASES",
    "CarbonAwareJob",
    "CarbonAwareJobSpec",
    "CarbonAwareJobStatus",
    "Decision",
    "DecisionMethod",
    "DecisionReason",
    "Emissions",
    "EnergyEstimate",
    "JobConditionType",
    "JobPhase",
    "JobReason",
    "JobTemplate",
    "MemberJobRef",
    "Placement",
    "PowerEstimate",
    "TimeSlot",
    "format_saved",
    "record_decision",
]

#: How many past decisions ``status.history`` keeps (oldest dropped first).
HISTORY_LIMIT: Final = 10
_HISTORY_MAX_ITEMS: Final = 20
_MAX_SLOTS: Final = 96
_MAX_REASONS: Final = 16


#: Once a Job was created in a member cluster, the template it came from cannot change: an edit
#: could otherwise be re-created later (after a TTL removed the member Job) without being checked.
#: Status writes go through the status subresource, where spec cannot change, so they always pass.
TEMPLATE_FIXED_RULE: Final[dict[str, Any]] = {
    "rule": "!has(oldSelf.status) || !has(oldSelf.status.memberJob) || self.spec.template == oldSelf.spec.template",
    "message": "spec.template cannot change once the job was dispatched to a member cluster (status.memberJob is set): "
               "delete the CarbonAwareJob and create a new one",
    "fieldPath": ".spec.template",
    "reason": "FieldValueForbidden",
}


class JobPhase(enum.StrEnum):
    """Where a CarbonAwareJob is in its life."""

    PENDING = "Pending"  # accepted, not yet planned
    WAITING = "Waiting"  # planned, waiting for its start time
    DISPATCHED = "Dispatched"  # Job created in the member cluster, not yet running
    RUNNING = "Running"
    SUSPENDED = "Suspended"  # interruptible work paused for a dirtier period
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class JobConditionType(enum.StrEnum):
    """Condition types a CarbonAwareJob's status may carry."""

    VALID = "Valid"
    SCHEDULED = "Scheduled"
    SIGNALS_STALE = "SignalsStale"
    DEADLINE_AT_RISK = "DeadlineAtRisk"
    DISPATCHED = "Dispatched"
    MEMBER_REACHABLE = "MemberReachable"  # only once the member was unreachable while the job ran there
    COMPLETE = "Complete"  # as on a batch/v1 Job: ``kubectl wait --for=condition=Complete`` works
    FAILED = "Failed"


#: The phases a CarbonAwareJob (and a member Job's progress) ends in.
TERMINAL_PHASES: Final = frozenset({JobPhase.SUCCEEDED, JobPhase.FAILED})


class JobReason(enum.StrEnum):
    """Reasons the operator gives on a CarbonAwareJob: of its conditions, of its Events, and the
    decision reason codes it adds to the planner's (``carbonshift.core.ReasonCode``)."""

    # Valid
    VALID = "Valid"
    INVALID_SPEC = "InvalidSpec"
    INVALID = "Invalid"  # the Warning Event of an invalid spec
    # Scheduled (besides the planner's reason codes) and the decision's Events
    NO_REACHABLE_CLUSTER = "NoReachableCluster"
    PLANNER_ERROR = "PlannerError"
    NO_PLAN = "NoPlan"
    PLANNED = "Planned"
    DECIDED = "Decided"
    REPLANNED = "Replanned"
    # reason codes the operator adds to a decision
    DRY_RUN = "DryRun"
    RELOCATED = "Relocated"
    DEADLINE_CAPPED = "DeadlineCapped"
    POWER_RAISED = "PowerRaised"
    BUILTIN_FORECAST = "BuiltinForecast"  # planned on the operator's own forecast from the signal's history
    LEARNED_FORECAST = "LearnedForecast"  # the forecast as the learned policy conditioned it (operator forecastPolicy)
    # re-planned because the newest signals made the decided window dearer (the hysteresis re-costs it)
    WINDOW_COST_ROSE = "WindowCostRose"
    # DeadlineAtRisk
    RUN_NOW_DEADLINE_NEAR = "RunNowDeadlineNear"
    DEADLINE_SAFE = "DeadlineSafe"
    # SignalsStale
    SIGNALS_STALE = "SignalsStale"
    SIGNALS_FRESH = "SignalsFresh"
    # Dispatched
    DISPATCHED = "Dispatched"
    DISPATCH_FAILED = "DispatchFailed"
    # A create was sent and its answer lost (unreachable, timeout, 5xx): the Job may exist there.
    DISPATCH_UNCONFIRMED = "DispatchUnconfirmed"
    # Written before a create is sent (the write-ahead intent): until its answer is recorded the
    # Job may exist in the decided cluster, as with DispatchUnconfirmed.
    DISPATCHING = "Dispatching"
    NAMESPACE_SHARE_FULL = "NamespaceShareFull"
    MEMBER_NAMESPACE_MISSING = "MemberNamespaceMissing"
    MEMBER_NAMESPACE_NOT_READY = "MemberNamespaceNotReady"
    MEMBER_ADMISSION_REFUSED = "MemberAdmissionRefused"
    MEMBER_PODS_REFUSED = "MemberPodsRefused"
    PODS_CREATED = "PodsCreated"
    # MemberReachable
    MEMBER_REACHABLE = "MemberReachable"
    MEMBER_UNREACHABLE = "MemberUnreachable"
    MEMBER_MISSING = "MemberMissing"
    # Complete / Failed, and the Events of a run's end
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"
    MEMBER_JOB_LOST = "MemberJobLost"
    MEMBER_JOB_DELETED = "MemberJobDeleted"
    # Events of interruptible work
    SUSPENDED = "Suspended"
    RESUMED = "Resumed"


class DecisionMethod(enum.StrEnum):
    """``status.decision.method``: how the plan was made."""

    SLIDING_WINDOW = "sliding-window"  # one run: the best contiguous window
    CHEAPEST_SLOTS = "cheapest-slots"  # interruptible: the cheapest slots before the deadline
    FALLBACK = "fallback"  # no usable signal: the policy's fallback decided


class JobTemplate(ApiModel):
    """A batch/v1 JobTemplateSpec: the Job to create in the chosen member cluster.

    Its content is not validated here beyond the presence of ``spec``; the member cluster's API
    server validates the Job when it is created.
    """

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )

    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Labels and annotations for the created Job (name and namespace are chosen by carbonshift).",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    spec: dict[str, Any] = Field(
        description="A batch/v1 JobSpec: pod template, completions, parallelism, backoffLimit, ...",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )


class PowerEstimate(ApiModel):
    """Average electrical power the job draws while it runs."""

    watts: float = Field(gt=0, description="Average power draw in watts (W) while running.")


class EnergyEstimate(ApiModel):
    """Total energy the job uses over its whole run."""

    watt_hours: float = Field(gt=0, description="Total energy for the whole run in watt-hours (Wh).")


class Placement(ApiModel):
    """Where the job may run (spatial shifting)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.allowedRegions) || size(self.allowedRegions) > 0",
                    "message": "spec.placement.allowedRegions must not be empty: list at least one region, or leave it out to allow every region",
                },
                {
                    "rule": "!has(self.preferredRegion) || !has(self.allowedRegions) || self.preferredRegion in self.allowedRegions",
                    "message": "spec.placement.preferredRegion must be one of spec.placement.allowedRegions",
                },
            ]
        }
    )

    allowed_regions: list[Region] | None = Field(
        default=None,
        max_length=MAX_REGIONS,
        description=(
            "Regions (MemberCluster spec.region) the job may run in. Leave out to allow every "
            "region the namespace's CarbonPolicy allows; if given, it must not be empty."
        ),
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )
    preferred_region: Region | None = Field(
        default=None,
        description="Region to use when the others are not clearly greener (e.g. where the data lives). Must be in allowedRegions when both are set.",
    )
    allow_relocation: bool = Field(
        default=False,
        description="Whether an interruptible job may be stopped in one region and restarted in another when that is greener.",
    )


class CarbonAwareJobSpec(ApiModel):
    """The job to run and how much freedom carbonshift has in when and where to run it."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "has(self.deadline) || has(self.maxDelay)",
                    "message": "set spec.deadline or spec.maxDelay: carbonshift needs to know by when the job must be finished",
                },
                {
                    "rule": "!(has(self.deadline) && has(self.maxDelay))",
                    "message": "set only one of spec.deadline and spec.maxDelay",
                },
                {
                    "rule": "!(has(self.power) && has(self.energy))",
                    "message": "set at most one of spec.power and spec.energy",
                },
            ]
        }
    )

    template: JobTemplate = Field(
        description="The batch/v1 Job to run (a JobTemplateSpec: metadata and spec)."
    )
    deadline: AwareDatetime | None = Field(
        default=None,
        description="RFC 3339 time by which the job must have finished, e.g. 2025-06-01T06:00:00Z. Set this or maxDelay.",
    )
    max_delay: Duration | None = Field(
        default=None,
        description=(
            "How long after creation the job may wait before it starts, as a Go duration "
            "(e.g. 6h, 90m, 1h30m); the deadline is creation + maxDelay + estimatedDuration. "
            "Set this or deadline."
        ),
        json_schema_extra={"x-kubernetes-validations": [duration_cel_rule("spec.maxDelay")]},
    )
    estimated_duration: Duration = Field(
        description="How long the job runs once started, as a Go duration (e.g. 45m, 2h). Must be greater than 0.",
        json_schema_extra={"x-kubernetes-validations": [duration_cel_rule("spec.estimatedDuration", positive=True)]},
    )
    power: PowerEstimate | None = Field(
        default=None,
        description="Average power draw while running; used to turn intensity into grams. Set this or energy, or neither (the operator's default power is used).",
    )
    energy: EnergyEstimate | None = Field(
        default=None,
        description="Total energy of the whole run; an alternative to power.",
    )
    placement: Placement = Field(
        default_factory=Placement,
        description="Which regions the job may run in, which one is preferred, and whether it may move.",
        json_schema_extra={"default": {}},
    )
    interruptible: bool = Field(
        default=False,
        description="Whether the job may be suspended and resumed later (its work survives a restart, e.g. it checkpoints).",
    )
    policy: Name | None = Field(
        default=None,
        description="Name of a CarbonPolicy in the same namespace. Leave out to use the namespace's policy named 'default', if any.",
    )


class DecisionReason(ApiModel):
    """One reason behind a decision, as data: a stable code and a sentence."""

    code: str = Field(
        min_length=1,
        max_length=64,
        description="Stable CamelCase identifier, e.g. LowestForecastIntensity, DeadlineBound, SolarSurplus.",
    )
    message: str = Field(default="", max_length=1024, description="Human-readable explanation.")


class TimeSlot(ApiModel):
    """A period during which interruptible work is planned to run."""

    start: AwareDatetime = Field(description="Start of the slot (RFC 3339).")
    end: AwareDatetime = Field(description="End of the slot (RFC 3339).")


class Decision(ApiModel):
    """Where and when the job runs, and how much CO2 that is expected to save."""

    cluster: Name = Field(description="Name of the MemberCluster chosen to run the job.")
    region: Region = Field(description="Region of that MemberCluster.")
    start: AwareDatetime = Field(description="Planned start time (RFC 3339).")
    slots: list[TimeSlot] = Field(
        default_factory=list,
        max_length=_MAX_SLOTS,
        description="For interruptible jobs: the periods it is planned to run in. Empty for a single run from start.",
    )
    expected_grams: float = Field(ge=0, description="Expected emissions of the planned run in gCO2eq.")
    baseline_grams: float = Field(
        ge=0,
        description="Emissions in gCO2eq had the job run right away in its preferred (or first allowed) region.",
    )
    saved_grams: float = Field(
        default=0.0,
        description="baselineGrams - expectedGrams in gCO2eq (negative when the plan is worse than running now).",
    )
    reasons: list[DecisionReason] = Field(
        default_factory=list,
        max_length=_MAX_REASONS,
        description="Why this plan was chosen, most important first.",
    )
    decided_at: AwareDatetime = Field(description="When the decision was made (RFC 3339).")
    method: str = Field(
        default="forecast",
        max_length=64,
        description="How it was decided: sliding-window (one run in the best contiguous window), cheapest-slots (interruptible: the cheapest slots before the deadline) or fallback (no usable signal: the policy's fallback decided).",
    )

    @model_validator(mode="before")
    @classmethod
    def _fill_saved(cls, data: Any) -> Any:
        if isinstance(data, dict):
            saved_keys = ("savedGrams", "saved_grams")
            if not any(k in data for k in saved_keys):
                expected = data.get("expectedGrams", data.get("expected_grams"))
                baseline = data.get("baselineGrams", data.get("baseline_grams"))
                if isinstance(expected, int | float) and isinstance(baseline, int | float):
                    data = {**data, "savedGrams": baseline - expected}
        return data


class Emissions(ApiModel):
    """Energy and emissions of the job, estimated from the plan and, when known, measured."""

    estimated_grams: float = Field(ge=0, description="Estimated emissions of the run in gCO2eq, including PUE.")
    measured_grams: float | None = Field(
        default=None,
        ge=0,
        description="Emissions computed from measured energy and the actual intensity, once known.",
    )
    energy_watt_hours: float = Field(ge=0, description="Energy of the run in watt-hours (Wh), including PUE.")


class MemberJobRef(ApiModel):
    """The batch/v1 Job that carbonshift created in a member cluster."""

    cluster: Name = Field(description="Name of the MemberCluster.")
    namespace: Name = Field(description="Namespace of the Job in the member cluster.")
    name: Name = Field(description="Name of the Job.")
    uid: str | None = Field(default=None, max_length=64, description="UID of the Job.")


class CarbonAwareJobStatus(ApiModel):
    """What carbonshift decided, dispatched and observed. Written by the operator only."""

    phase: JobPhase | None = Field(
        default=None,
        description="Pending, Waiting, Dispatched, Running, Suspended, Succeeded or Failed.",
    )
    decision: Decision | None = Field(default=None, description="The current decision.")
    saved_display: str | None = Field(
        default=None,
        max_length=64,
        description="The current decision's savings for humans, e.g. '123 g (41%)'; shown in the SAVED column.",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        max_length=16,
        description="Valid, Scheduled, SignalsStale, DeadlineAtRisk, Dispatched.",
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
    history: list[Decision] = Field(
        default_factory=list,
        max_length=_HISTORY_MAX_ITEMS,
        description=f"Earlier decisions, oldest first (at most {HISTORY_LIMIT} are kept).",
    )
    emissions: Emissions | None = Field(default=None, description="Energy and emissions of the run.")
    member_job: MemberJobRef | None = Field(
        default=None, description="The Job created in the member cluster, once dispatched."
    )
    observed_generation: int | None = Field(
        default=None, ge=0, description="The .metadata.generation this status reflects."
    )
    message: str | None = Field(default=None, max_length=4096, description="Human-readable summary of the state.")


class CarbonAwareJob(Resource):
    """A batch Job that carbonshift runs when and where electricity is greenest."""

    kind_info = KindInfo(
        kind="CarbonAwareJob",
        plural="carbonawarejobs",
        singular="carbonawarejob",
        scope="Namespaced",
        short_names=("caj",),
        printer_columns=(
            PrinterColumn("Phase", ".status.phase", description="Where the job is in its life."),
            PrinterColumn("Region", ".status.decision.region", description="Region chosen to run the job."),
            PrinterColumn("Start", ".status.decision.start", description="Planned start time."),
            PrinterColumn("Saved", ".status.savedDisplay", description="gCO2eq saved versus running now."),
            PrinterColumn("Age", ".metadata.creationTimestamp", type="date"),
        ),
        validations=(TEMPLATE_FIXED_RULE,),
    )

    kind: Literal["CarbonAwareJob"] = "CarbonAwareJob"
    spec: CarbonAwareJobSpec = Field(description="What to run and how much freedom carbonshift has.")
    status: CarbonAwareJobStatus = Field(
        default_factory=CarbonAwareJobStatus, description="What carbonshift decided and observed."
    )


def format_saved(saved_grams: float, baseline_grams: float) -> str:
    """The SAVED column text: ``"123 g (41%)"``; kilograms above 10 kg; no percentage without a baseline."""
    if abs(saved_grams) >= 10_000:
        amount = f"{saved_grams / 1000:.1f} kg"
    else:
        amount = f"{saved_grams:.0f} g"
    if baseline_grams > 0:
        return f"{amount} ({saved_grams / baseline_grams:.0%})"
    return amount


def record_decision(
    status: CarbonAwareJobStatus, decision: Decision, *, limit: int = HISTORY_LIMIT
) -> CarbonAwareJobStatus:
    """A copy of ``status`` with ``decision`` as the current one; the previous one moves to history.

    The history keeps the newest ``limit`` entries. ``savedDisplay`` follows the new decision.
    """
    history = list(status.history)
    if status.decision is not None:
        history.append(status.decision)
    history = history[-limit:] if limit > 0 else []
    return status.model_copy(
        update={
            "decision": decision,
            "history": history,
            "saved_display": format_saved(decision.saved_grams, decision.baseline_grams),
        }
    )
