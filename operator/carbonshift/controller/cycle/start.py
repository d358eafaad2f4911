"""Step 4a of a cycle: start the jobs whose time has come, by creating their member Job (or
adopting the one an earlier, interrupted attempt made).

The member is asked first (dry runs of the Job and of a Pod from its template), so a Job its
admission refuses is reported in status (``Dispatched=False``, the member's words) instead of
becoming a Job without pods, and asked again later, not every cycle. The admin's fair share
(``capacity.maxJobsPerNamespace``) is counted on the live view, including creations in flight.
Then the intent is written to status at once (``Dispatching``, ``unconfirmed``) and only once
the hub holds it is the create sent: a kill right after the create leaves a status that says
where a copy may be.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from carbonshift.api import JobConditionType, JobPhase, JobReason, MemberCluster
from carbonshift.controller.clock import Clock
from carbonshift.controller.cycle.context import CycleView, JobContext
from carbonshift.controller.cycle.timing import starts_suspended
from carbonshift.controller.cycle.unconfirmed import (deleted_cluster, intent_message, unconfirmed_cluster,
                                                       waiting_message)
from carbonshift.controller.dispatch import Refused, Unconfirmed
from carbonshift.controller.kube import KubeError
from carbonshift.controller.memberjobs import MemberJobs
from carbonshift.controller.members import MemberRegistry
from carbonshift.controller.metrics import Metrics
from carbonshift.timefmt import parse_iso


class Starter:
    def __init__(self, member_jobs: MemberJobs, registry: MemberRegistry, metrics: Metrics, clock: Clock,
                 flush: Callable[[JobContext], Awaitable[bool]]) -> None:
        self.member_jobs = member_jobs
        self.registry = registry
        self.metrics = metrics
        self.clock = clock
        self.flush = flush  # writes a job's status now; False when the hub did not take it
        self._retry_after: dict[str, float] = {}  # job uid -> monotonic time the member may be asked again
        self._creating: dict[str, tuple[str, str]] = {}  # job uid -> (member, hub namespace) being created
        self._unconfirmed: dict[str, str] = {}  # job uid -> member a create went to without an answer

    def forget_except(self, live: set[str]) -> None:
        for uid in set(self._retry_after) - live:
            del self._retry_after[uid]
        for uid in set(self._unconfirmed) - live:
            del self._unconfirmed[uid]

    async def start(self, ctx: JobContext, view: CycleView) -> None:
        decision = ctx.current("decision")
        if not decision or ctx.patch.get("phase") == JobPhase.PENDING:
            return
        if parse_iso(decision["start"]) > view.now and not ctx.policy.dry_run:
            if ctx.current("phase") != JobPhase.WAITING:
                ctx.set(phase=JobPhase.WAITING)
            return
        if not view.usable(decision["cluster"], ctx.namespace):
            if unconfirmed_cluster(ctx, view) == decision["cluster"]:
                self._wait_for(ctx, decision["cluster"], view.now)
                return
            ctx.set(phase=JobPhase.WAITING, message=f"cluster {decision['cluster']} is unreachable or not open to "
                                                    "this namespace; re-planning")
            return
        await self._dispatch(ctx, view.healthy[decision["cluster"]], decision, view)

    async def _dispatch(self, ctx: JobContext, member: MemberCluster, decision: dict[str, Any],
                        view: CycleView) -> None:
        suspend = starts_suspended(decision, view.now)
        existing = own_copy(ctx, view)
        if existing is not None and existing[0] != member.metadata.name and existing[0] in view.healthy:
            # A copy made before a crash, in another cluster than this cycle's decision: it is the
            # run (it may have started); the decision follows it rather than making a second one.
            member = view.healthy[existing[0]]
            ctx.set(decision={**decision, "cluster": member.metadata.name, "region": member.spec.region})
        unseen = self._unseen_copy(ctx, view, exclude=str(member.metadata.name))
        if existing is None and unseen is not None:
            self._wait_for(ctx, unseen, view.now)  # never a second copy while one may run out of sight
            return
        try:
            if existing is not None and existing[0] == member.metadata.name:
                created = existing[1]
            else:
                if self.clock.monotonic() < self._retry_after.get(ctx.uid, float("-inf")):
                    return  # the member refused it a moment ago: asked again later, not every cycle
                full = self._namespace_full(ctx, member)
                if full is not None:
                    ctx.set(phase=JobPhase.WAITING, message=full)
                    ctx.condition(JobConditionType.DISPATCHED, False, JobReason.NAMESPACE_SHARE_FULL, full, view.now)
                    return
                # Counted at once (no await since the check): concurrent dispatches see each other.
                self._creating[ctx.uid] = (str(member.metadata.name), ctx.namespace)
                try:
                    manifest = await self.member_jobs.prepare(member, ctx.body, suspend=suspend)
                    if not await self._intend(ctx, member, manifest, view):
                        return  # not recorded, so not sent: the next cycle tries again
                    created = await self.member_jobs.send(member, manifest, ctx.uid)
                finally:
                    self._creating.pop(ctx.uid, None)
        except Refused as refused:
            self._refused(ctx, member, refused, view.now)
            return
        except KubeError as exc:
            self._failed(ctx, member, exc, view.now)
            return
        self._retry_after.pop(ctx.uid, None)
        self._unconfirmed.pop(ctx.uid, None)
        self.metrics.dispatches.labels(cluster=member.metadata.name).inc()
        meta = created["metadata"]
        ctx.set(phase=JobPhase.SUSPENDED if suspend else JobPhase.DISPATCHED,
                memberJob=member_job_ref(member, created),
                message=f"dispatched to {member.metadata.name} ({member.spec.region})")
        ctx.condition(JobConditionType.DISPATCHED, True, JobReason.DISPATCHED,
                      f"Job {meta['namespace']}/{meta['name']} created in {member.metadata.name}", view.now)
        ctx.event(JobReason.DISPATCHED, f"created Job {meta['namespace']}/{meta['name']} in cluster "
                                        f"{member.metadata.name} (region {member.spec.region}). "
                                        f"{ctx.current('message') or ''}"[:1024])

    async def _intend(self, ctx: JobContext, member: MemberCluster, manifest: dict[str, Any],
                      view: CycleView) -> bool:
        """Writes to status, at once, that a create may happen in ``member`` (the decision names it);
        False when the hub did not take the write, and then status is left as it was."""
        before, events = dict(ctx.patch), list(ctx.events)
        deleted = deleted_cluster(ctx, view)
        message = intent_message(manifest, str(member.metadata.name), deleted)
        if deleted is not None:  # said once: the next status names the new cluster
            ctx.event(JobReason.DISPATCH_UNCONFIRMED, message, warning=True)
        if not ctx.current("phase"):
            ctx.set(phase=JobPhase.WAITING)  # the Job is not made yet
        ctx.condition(JobConditionType.DISPATCHED, False, JobReason.DISPATCHING, message, view.now)
        if await self.flush(ctx):
            return True
        ctx.patch, ctx.events = before, events  # nothing was sent: status must not say a create may have been
        return False

    def _refused(self, ctx: JobContext, member: MemberCluster, refused: Refused, now: datetime) -> None:
        self._retry_after[ctx.uid] = self.clock.monotonic() + refused.retry_s
        message = f"{member.metadata.name} refuses the Job: {refused.message}"[:1024]
        if refused.reason != JobReason.MEMBER_NAMESPACE_NOT_READY and ctx.status.get("message") != message:
            ctx.event(refused.reason, message, warning=True)  # one Event per new refusal
        ctx.set(phase=JobPhase.WAITING, message=message)
        ctx.condition(JobConditionType.DISPATCHED, False, refused.reason, message, now)

    def _failed(self, ctx: JobContext, member: MemberCluster, exc: KubeError, now: datetime) -> None:
        self.member_jobs.failed(member, "create")
        message = f"dispatch to {member.metadata.name} failed: {exc}"
        reason = JobReason.DISPATCH_FAILED
        if isinstance(exc, Unconfirmed):
            # Recorded in status with the decision naming the cluster (``unconfirmed``), and here
            # in case that write fails too.
            self._unconfirmed[ctx.uid] = str(member.metadata.name)
            reason = JobReason.DISPATCH_UNCONFIRMED
            message = f"{waiting_message(str(member.metadata.name))} ({exc})"
        if ctx.status.get("message") != message:  # one Event per new failure, not one per cycle
            ctx.event(reason, str(exc), warning=True)
        ctx.set(phase=JobPhase.WAITING, message=message)  # never left without a phase
        ctx.condition(JobConditionType.DISPATCHED, False, reason, str(exc), now)
        if exc.unreachable:
            self.registry.mark_unreachable(str(member.metadata.name), str(exc))

    def _unseen_copy(self, ctx: JobContext, view: CycleView, *, exclude: str) -> str | None:
        """A member other than ``exclude`` that may hold a copy of the job although its Jobs are not
        seen this cycle: a create went there without an answer, or this process made a copy there
        whose status write did not happen (its view still holds it)."""
        if self._unconfirmed.get(ctx.uid) in view.member_jobs:
            del self._unconfirmed[ctx.uid]  # looked at: a copy there is adopted, else none was made
        suspects = set(self.member_jobs.holding(ctx.uid))
        if ctx.uid in self._unconfirmed:
            suspects.add(self._unconfirmed[ctx.uid])
        if (cluster := unconfirmed_cluster(ctx, view)) is not None:
            suspects.add(cluster)
        return next((name for name in sorted(suspects)
                     if name != exclude and name in view.members and name not in view.member_jobs), None)

    def _wait_for(self, ctx: JobContext, cluster: str, now: datetime) -> None:
        message = waiting_message(cluster)
        ctx.set(phase=JobPhase.WAITING, message=message)
        if ctx.condition_of(JobConditionType.DISPATCHED).get("reason") != JobReason.DISPATCH_UNCONFIRMED:
            ctx.condition(JobConditionType.DISPATCHED, False, JobReason.DISPATCH_UNCONFIRMED, message, now)
            ctx.event(JobReason.DISPATCH_UNCONFIRMED, message, warning=True)  # once, when it starts waiting

    def _namespace_full(self, ctx: JobContext, member: MemberCluster) -> str | None:
        """The admin's fair share: at most maxJobsPerNamespace active Jobs of one hub namespace."""
        limit = member.spec.capacity.max_jobs_per_namespace
        active = self.member_jobs.active_of_namespace(member, ctx.namespace, besides=ctx.uid)
        if limit is None or active is None:
            return None
        active += sum(1 for uid, where in self._creating.items()
                      if uid != ctx.uid and where == (member.metadata.name, ctx.namespace))
        if active < limit:
            return None
        return (f"namespace {ctx.namespace} has {active} active Jobs in {member.metadata.name}, its share "
                f"(capacity.maxJobsPerNamespace) is {limit}: waiting for one to end")


def own_copy(ctx: JobContext, view: CycleView) -> tuple[str, dict[str, Any]] | None:
    """A copy this hub made before status recorded one (killed in between): a Job with this hub's
    label and the job's UID label, in the member namespace of the job's own namespace. The labels
    alone prove nothing (anyone who may create Jobs can write them); the namespace limits who could
    have made a look-alike to those with rights in the tenant's own member namespace."""
    for name, member in view.members.items():
        job = view.member_jobs.get(name, {}).get(ctx.uid)
        if job is not None and job["metadata"].get("namespace") == member.spec.member_namespace(ctx.namespace):
            return name, job
    return None


def member_job_ref(member: MemberCluster, created: dict[str, Any]) -> dict[str, Any]:
    """``status.memberJob``: where the run is."""
    meta = created["metadata"]
    return {"cluster": member.metadata.name, "namespace": meta["namespace"], "name": meta["name"],
            "uid": meta.get("uid")}
