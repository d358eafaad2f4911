"""Status and condition bookkeeping for CarbonAwareJobs and MemberClusters (pure, no I/O).

Status is written as a merge patch of only the keys that changed, so an unchanged cycle costs
no API call, and ``lastTransitionTime`` moves only when a condition's status really changes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from carbonshift.api.common import Condition, ConditionStatus, set_condition

HISTORY_LIMIT = 10


def with_condition(conditions: list[dict[str, Any]], type_: str, status: bool, reason: str, message: str,
                   now: datetime, generation: int | None) -> list[dict[str, Any]]:
    # Fast path: most cycles re-assert a condition that did not change (thousands per cycle).
    wanted = "True" if status else "False"
    for existing in conditions:
        if existing.get("type") == type_:
            if (existing.get("status") == wanted and existing.get("reason") == reason
                    and existing.get("message") == message[:1024]
                    and existing.get("observedGeneration") == generation):
                return conditions
            break
    models = [Condition.model_validate(c) for c in conditions]
    updated = set_condition(models, type_, ConditionStatus.TRUE if status else ConditionStatus.FALSE,
                            reason, message[:1024], now=now, observed_generation=generation)
    return [c.model_dump(mode="json", by_alias=True, exclude_none=True) for c in updated]


def with_decision(status: dict[str, Any], decision: dict[str, Any]) -> dict[str, Any]:
    """Status keys for a new decision: the previous one moves into the bounded history."""
    previous = status.get("decision")
    history = list(status.get("history") or [])
    if previous and _decision_key(previous) != _decision_key(decision):
        history = [*history, previous][-HISTORY_LIMIT:]
    return {"decision": decision, "history": history}


def _decision_key(decision: dict[str, Any]) -> tuple[Any, ...]:
    return (decision.get("cluster"), decision.get("start"), tuple(s.get("start") for s in decision.get("slots") or []))


def changed(current: dict[str, Any], desired: dict[str, Any]) -> dict[str, Any]:
    """The keys of ``desired`` whose values differ from ``current`` (a minimal merge patch)."""
    return {k: v for k, v in desired.items() if current.get(k) != v}


def same_decision(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    return a is not None and b is not None and _decision_key(a) == _decision_key(b)
