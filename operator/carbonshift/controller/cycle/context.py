"""What one cycle works with: the view of member clusters and signals, and one context per job.

A ``JobContext`` collects what the cycle decides about a job as a status patch, Events and
member calls that may only run once that patch is written; nothing is written while deciding.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from carbonshift.api import CarbonAwareJob, JobConditionType, MemberCluster
from carbonshift.controller.signalhub import RegionReading
from carbonshift.controller.status import with_condition
from carbonshift.controller.validation import EffectivePolicy, usable_members


@dataclass
class JobContext:
    """One job in this cycle: its parsed form and what the cycle worked out about it."""

    body: dict[str, Any]
    model: CarbonAwareJob
    policy: EffectivePolicy
    regions: tuple[str, ...]
    status: dict[str, Any]
    submitted: datetime | None = None  # creation time on the operator's clock
    patch: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, bool]] = field(default_factory=list)
    plan: Any = None  # this cycle's core Plan, when it holds capacity
    # Member calls that may only run once the status is written (e.g. releasing a finished copy).
    after_flush: list[Callable[[], Awaitable[None]]] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.body['metadata'].get('name')}"

    @property
    def namespace(self) -> str:
        return str(self.body["metadata"].get("namespace"))

    @property
    def uid(self) -> str:
        return str(self.body["metadata"]["uid"])

    @property
    def generation(self) -> int | None:
        generation = self.body["metadata"].get("generation")
        return int(generation) if generation is not None else None

    def current(self, key: str) -> Any:
        """The status value as it will be once the patch is written."""
        return self.patch.get(key, self.status.get(key))

    def set(self, **values: Any) -> None:
        self.patch.update(values)

    def condition(self, type_: JobConditionType, status: bool, reason: str, message: str, now: datetime) -> None:
        conditions = self.current("conditions") or []
        self.patch["conditions"] = with_condition(conditions, type_, status, reason, message, now, self.generation)

    def condition_of(self, type_: JobConditionType) -> dict[str, Any]:
        return next((c for c in self.current("conditions") or [] if c.get("type") == type_), {})

    def event(self, reason: str, message: str, warning: bool = False) -> None:
        self.events.append((reason, message, warning))


@dataclass
class CycleView:
    """What the cycle knows about member clusters and signals right now."""

    now: datetime
    members: dict[str, MemberCluster]
    healthy: dict[str, MemberCluster]
    region_member: dict[str, MemberCluster]  # region -> the member cluster serving it this cycle
    readings: dict[str, RegionReading]  # region -> signals
    member_jobs: dict[str, dict[str, dict[str, Any]]]  # member -> job uid label -> member Job

    def member_for(self, region: str, namespace: str) -> MemberCluster | None:
        """The healthy cluster of ``region`` that jobs of ``namespace`` may use (first by name)."""
        open_ = usable_members(namespace, [m for m in self.healthy.values() if m.spec.region == region])
        return min(open_, key=lambda m: str(m.metadata.name)) if open_ else None

    def usable(self, cluster: str | None, namespace: str) -> bool:
        member = self.healthy.get(cluster or "")
        return member is not None and bool(usable_members(namespace, [member]))

    def copy_of(self, uid: str) -> tuple[str, dict[str, Any]] | None:
        """A member holding a copy of job ``uid`` (the first listed), and that copy."""
        for name, jobs in self.member_jobs.items():
            if uid in jobs:
                return name, jobs[uid]
        return None
