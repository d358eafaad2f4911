"""Building blocks shared by the three resources: the model base class, object metadata,
conditions, Secret references, and the per-kind facts the CRD generator needs.

Every resource model derives from :class:`ApiModel`, which gives camelCase names in YAML/JSON and
snake_case names in Python. :class:`Resource` is the typed view of a whole object as the API
server returns it (``Kind.model_validate(body)``); :meth:`Resource.to_body` goes the other way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, ClassVar, Final

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

__all__ = [
    "API_VERSION",
    "GROUP",
    "VERSION",
    "ApiModel",
    "Condition",
    "ConditionStatus",
    "KindInfo",
    "Name",
    "ObjectMeta",
    "PodSecurityLevel",
    "PrinterColumn",
    "Region",
    "Resource",
    "SecretKeyRef",
    "SecretRef",
    "find_condition",
    "set_condition",
]

GROUP: Final = "carbonshift.io"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"

#: Upper bounds that keep CEL rules within the API server's cost budget.
MAX_REGIONS: Final = 64
MAX_NAME_LENGTH: Final = 253

#: A region name as used in ``MemberCluster.spec.region`` (e.g. ``eu-de``).
Region = Annotated[str, Field(min_length=1, max_length=63)]
#: A Kubernetes object name.
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH)]


class ApiModel(BaseModel):
    """Base for every spec/status model: camelCase on the wire, snake_case in Python.

    Unknown fields are ignored rather than refused, so a newer API server (or Kopf's own
    bookkeeping) never makes the operator fail to read an object.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        use_enum_values=False,
    )


class ObjectMeta(BaseModel):
    """The parts of ``metadata`` the operator reads; everything else is kept as it came."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="allow")

    name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    generation: int | None = None
    resource_version: str | None = None
    creation_timestamp: AwareDatetime | None = None
    deletion_timestamp: AwareDatetime | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    finalizers: list[str] = Field(default_factory=list)


class PodSecurityLevel(enum.StrEnum):
    """A Kubernetes Pod Security Standards level a job's pods must meet (``privileged`` is not offered)."""

    BASELINE = "baseline"  # no known privilege escalation: no host namespaces, privileged, hostPath...
    RESTRICTED = "restricted"  # baseline plus hardening: non-root, seccomp, all capabilities dropped

    @staticmethod
    def stricter(*levels: PodSecurityLevel | str | None) -> PodSecurityLevel:
        """The strictest of ``levels`` (None entries ignored; none given: restricted)."""
        given = [PodSecurityLevel(level) for level in levels if level is not None]
        if not given or PodSecurityLevel.RESTRICTED in given:
            return PodSecurityLevel.RESTRICTED
        return PodSecurityLevel.BASELINE


class ConditionStatus(enum.StrEnum):
    """The status of a condition, as in ``metav1.Condition``."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(ApiModel):
    """One aspect of the object's current state (the standard ``metav1.Condition`` shape)."""

    type: str = Field(
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
        description="Type of condition in CamelCase, e.g. Scheduled or Ready.",
    )
    status: ConditionStatus = Field(description="Status of the condition: True, False or Unknown.")
    reason: str = Field(
        max_length=1024,
        min_length=1,
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$",
        description="Programmatic identifier (CamelCase) for the condition's last transition.",
    )
    message: str = Field(
        default="",
        max_length=32768,
        description="Human-readable details about the last transition.",
    )
    last_transition_time: AwareDatetime = Field(
        description="When the condition last changed from one status to another.",
    )
    observed_generation: int | None = Field(
        default=None,
        ge=0,
        description="The .metadata.generation the condition was set from.",
    )


def find_condition(conditions: list[Condition], type_: str) -> Condition | None:
    """The condition of the given type, or None."""
    for condition in conditions:
        if condition.type == type_:
            return condition
    return None


def set_condition(
    conditions: list[Condition],
    type_: str,
    status: ConditionStatus | bool,
    reason: str,
    message: str,
    *,
    now: datetime,
    observed_generation: int | None = None,
) -> list[Condition]:
    """Return a new list with the condition of ``type_`` set; other conditions are unchanged.

    ``lastTransitionTime`` moves to ``now`` only when the status actually changes, as Kubernetes
    conventions require. The clock is passed in so callers (and tests) control it.
    """
    if isinstance(status, bool):
        status = ConditionStatus.TRUE if status else ConditionStatus.FALSE
    type_ = str(type_)
    previous = find_condition(conditions, type_)
    transition = previous.last_transition_time if previous and previous.status == status else now
    new = Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=transition,
        observed_generation=observed_generation,
    )
    result = [c for c in conditions if c.type != type_]
    index = conditions.index(previous) if previous else len(result)
    result.insert(index, new)
    return result


class SecretKeyRef(ApiModel):
    """A key in a Secret on the hub cluster."""

    name: Name = Field(description="Name of the Secret.")
    namespace: Name = Field(description="Namespace of the Secret.")
    key: str = Field(min_length=1, max_length=253, description="Key within the Secret's data.")


class SecretRef(ApiModel):
    """A Secret on the hub cluster, read as a whole (e.g. username and password keys)."""

    name: Name = Field(description="Name of the Secret.")
    namespace: Name = Field(description="Namespace of the Secret.")


@dataclass(frozen=True)
class PrinterColumn:
    """An ``additionalPrinterColumns`` entry: what ``kubectl get`` shows."""

    name: str
    json_path: str
    type: str = "string"
    description: str = ""
    priority: int = 0


@dataclass(frozen=True)
class KindInfo:
    """Facts about a kind that are not part of its schema but go into its CRD."""

    kind: str
    plural: str
    singular: str
    scope: str  # "Namespaced" or "Cluster"
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ("carbonshift",)
    printer_columns: tuple[PrinterColumn, ...] = field(default_factory=tuple)
    description: str = ""
    # CEL rules on the whole object (x-kubernetes-validations of the root): the only place that
    # sees spec and status together, e.g. "the template is fixed once dispatched".
    validations: tuple[dict[str, Any], ...] = ()


class Resource(BaseModel):
    """A whole object: apiVersion, kind, metadata, and (in subclasses) spec and status.

    ``model_validate(body)`` accepts what the API server (or Kopf) hands over, tolerating extra
    metadata; ``to_body()`` produces a manifest with camelCase keys and no nulls.
    """

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    kind_info: ClassVar[KindInfo]

    api_version: str = API_VERSION
    kind: str
    metadata: ObjectMeta = Field(default_factory=ObjectMeta)

    def to_body(self) -> dict[str, Any]:
        """The object as a JSON-compatible manifest (camelCase keys, unset fields left out)."""
        body: dict[str, Any] = self.model_dump(mode="json", by_alias=True, exclude_none=True)
        meta = body.get("metadata", {})
        for key in ("labels", "annotations", "finalizers"):
            if not meta.get(key):
                meta.pop(key, None)
        return body
