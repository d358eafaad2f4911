"""A create that may have made a member Job nobody recorded (pure): the Job may exist in that cluster.

The status write that records a copy (``memberJob``) comes after its create. So before a create
is sent, the decision naming the cluster and ``Dispatched=False``, reason ``Dispatching``, are
written to status (the write-ahead intent; no write, no create). A create that was sent but not
answered (the member out of reach, a timeout, a 5xx) is recorded as reason
``DispatchUnconfirmed``. Either reason, without ``memberJob``, means a copy may exist in the
decided cluster, also after a restart that forgot everything: while that cluster's Jobs cannot
be listed, the job keeps its decision and is not created anywhere else (the copy there may be
running). Once the cluster is listed, a copy there is adopted, or the create is sent again. A
MemberCluster the admin deleted cannot be looked at any more: it holds no job back.
"""

from __future__ import annotations

from typing import Any

from carbonshift.api import JobConditionType, JobReason
from carbonshift.controller.cycle.context import CycleView, JobContext

MAYBE_CREATED = frozenset({JobReason.DISPATCHING, JobReason.DISPATCH_UNCONFIRMED})


def _pending_create(ctx: JobContext) -> str | None:
    """The cluster status says a create may have gone to, with no copy recorded."""
    if ctx.current("memberJob"):
        return None
    dispatched: dict[str, Any] = next((c for c in ctx.status.get("conditions") or []
                                       if c.get("type") == JobConditionType.DISPATCHED), {})
    if dispatched.get("reason") not in MAYBE_CREATED:
        return None
    cluster = (ctx.status.get("decision") or {}).get("cluster")
    return str(cluster) if cluster else None


def unconfirmed_cluster(ctx: JobContext, view: CycleView) -> str | None:
    """The cluster a create of this job may have reached unrecorded, while its Jobs are not seen."""
    cluster = _pending_create(ctx)
    if cluster is None or cluster not in view.members or cluster in view.member_jobs:
        return None  # a deleted MemberCluster cannot be looked at any more; an observed one was
    return cluster


def deleted_cluster(ctx: JobContext, view: CycleView) -> str | None:
    """The cluster a create of this job may have reached unrecorded, whose MemberCluster is gone."""
    cluster = _pending_create(ctx)
    return cluster if cluster is not None and cluster not in view.members else None


def waiting_message(cluster: str) -> str:
    return (f"a create sent to {cluster} has no recorded answer, so the Job may exist there; it is not created "
            f"elsewhere until {cluster} can be looked at")


def intent_message(manifest: dict[str, Any], cluster: str, deleted: str | None) -> str:
    """The ``Dispatching`` condition's message: where the create goes (and whom a deleted member leaves behind)."""
    meta = manifest["metadata"]
    text = f"creating Job {meta['namespace']}/{meta['name']} in cluster {cluster}"
    if deleted is not None:
        text += (f"; MemberCluster {deleted}, where an earlier create may have made a copy, is deleted (or no "
                 "longer valid) and cannot be looked at")
    return text
