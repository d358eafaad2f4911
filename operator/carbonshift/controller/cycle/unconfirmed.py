"""A create whose answer never came (pure): the member Job may exist in that cluster.

The status write that records a copy comes after its create, so a create that was sent but not
answered (the member out of reach, a timeout, a 5xx) is recorded instead as ``Dispatched=False``,
reason ``DispatchUnconfirmed``, beside the decision naming the cluster. While that cluster's Jobs
cannot be listed, the job keeps its decision and is not created anywhere else: the copy there,
if it exists, may be running. Once the cluster answers, a copy there is adopted, or the create
is sent again there.
"""

from __future__ import annotations

from typing import Any

from carbonshift.api import JobConditionType, JobReason
from carbonshift.controller.cycle.context import CycleView, JobContext


def unconfirmed_cluster(ctx: JobContext, view: CycleView) -> str | None:
    """The cluster a create of this job was sent to without an answer, while its Jobs are not seen."""
    if ctx.current("memberJob"):
        return None
    dispatched: dict[str, Any] = next((c for c in ctx.status.get("conditions") or []
                                       if c.get("type") == JobConditionType.DISPATCHED), {})
    if dispatched.get("reason") != JobReason.DISPATCH_UNCONFIRMED:
        return None
    cluster = (ctx.status.get("decision") or {}).get("cluster")
    if not cluster or cluster not in view.members or cluster in view.member_jobs:
        return None  # a deleted MemberCluster cannot be looked at any more; an observed one was
    return str(cluster)


def waiting_message(cluster: str) -> str:
    return (f"the create sent to {cluster} got no answer, so the Job may exist there; it is not created "
            f"elsewhere until {cluster} can be looked at")
