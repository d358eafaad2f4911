"""Step 4b of a cycle: follow the jobs already dispatched, from what their member Job shows.

The member Job's progress is mirrored into the phase; interruptible work is suspended and
resumed at its window edges and moved when clearly greener elsewhere (``timing``); a run that
ended is recorded (``finish``). A copy anywhere but the decided cluster is left over from a
relocation and removed. A member Job is created once: one deleted before its end fails the job
(``MemberJobDeleted``), one that vanished is reported lost (``MemberJobLost``), never run again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from carbonshift.api import TERMINAL_PHASES, JobConditionType, JobPhase, JobReason, MemberCluster
from carbonshift.controller.clock import Clock
from carbonshift.controller.cycle.context import CycleView, JobContext
from carbonshift.controller.cycle.finish import Finisher, ended, release_after_flush
from carbonshift.controller.cycle.start import member_job_ref
from carbonshift.controller.cycle.timing import relocation, starts_suspended, window_phase
from carbonshift.controller.dispatch import Refused
from carbonshift.controller.kube import KubeError
from carbonshift.controller.manifests import job_progress
from carbonshift.controller.memberjobs import MemberJobs
from carbonshift.controller.settings import OperatorSettings
from carbonshift.controller.status import with_decision
from carbonshift.controller.translate import saved_display

PODS_CHECK_S = 10.0  # a started member Job without pods is asked about refused pods this often
# A member Job's progress -> the job's phase (finished ones are recorded by ``finish``).
PHASE_OF_PROGRESS = {JobPhase.RUNNING: JobPhase.RUNNING, JobPhase.PENDING: JobPhase.DISPATCHED,
                     JobPhase.SUSPENDED: JobPhase.SUSPENDED}


def recorded_or_own(ctx: JobContext, view: CycleView, cluster: str) -> dict[str, Any] | None:
    """The job's copy in ``cluster`` as its watched view shows it: the one status records (by its
    member UID), or, where status records none there (moved, or not recorded yet), one in the
    member namespace of the job's own namespace. A look-alike elsewhere (labels can be copied)
    is neither followed nor deleted; a look-alike standing in for the recorded copy is not it (the
    recorded one is then looked up by name)."""
    job = view.member_jobs.get(cluster, {}).get(ctx.uid)
    member = view.members.get(cluster)
    if job is None or member is None:
        return None
    ref = ctx.current("memberJob") or {}
    if ref.get("cluster") == cluster and ref.get("uid"):
        return job if job["metadata"].get("uid") == ref["uid"] else None
    return job if job["metadata"].get("namespace") == member.spec.member_namespace(ctx.namespace) else None


class Follower:
    def __init__(self, member_jobs: MemberJobs, finisher: Finisher, clock: Clock, settings: OperatorSettings,
                 flush: Callable[[JobContext], Awaitable[bool]]) -> None:
        self.member_jobs = member_jobs
        self.finisher = finisher
        self.clock = clock
        self.settings = settings
        self.flush = flush  # writes a job's status now (a relocation writes its decision first)
        self._pods_checked: dict[str, float] = {}  # job uid -> monotonic time its refused pods were looked for

    def forget_except(self, live: set[str]) -> None:
        for uid in set(self._pods_checked) - live:
            del self._pods_checked[uid]

    async def follow(self, ctx: JobContext, view: CycleView) -> None:
        ref = ctx.current("memberJob")
        decision = ctx.current("decision") or {}
        target = decision.get("cluster") or ref["cluster"]
        for name in view.member_jobs:  # a copy outside the decided cluster: left from a relocation
            if name != target and (left := recorded_or_own(ctx, view, name)) is not None:
                await self.member_jobs.delete(view.healthy[name], left, ctx.uid)
        member = view.healthy.get(target)
        if member is None:
            reason = JobReason.MEMBER_UNREACHABLE if target in view.members else JobReason.MEMBER_MISSING
            ctx.condition(JobConditionType.MEMBER_REACHABLE, False, reason,
                          f"cluster {target} cannot be reached; the Job there is kept and watched", view.now)
            return
        if ctx.condition_of(JobConditionType.MEMBER_REACHABLE):
            ctx.condition(JobConditionType.MEMBER_REACHABLE, True, JobReason.MEMBER_REACHABLE,
                          f"cluster {target} is reachable", view.now)
        member_job = recorded_or_own(ctx, view, target)
        if member_job is None and ref["cluster"] != target:
            await self._create_relocated(ctx, member, decision, view)  # status already names the new cluster
            return
        if member_job is None:
            # Asked before calling it lost: the watch may simply not have shown it yet.
            member_job = await self.member_jobs.fetch(member, ref, ctx.uid)
            if member_job is None:
                self._lost(ctx, member, ref, view)
                return
        progress = job_progress(member_job)
        if progress in TERMINAL_PHASES:
            await self.finisher.finish(ctx, member, member_job, progress, view)
            return
        if member_job["metadata"].get("deletionTimestamp"):
            self._deleted_in_member(ctx, member, member_job, view)
            return
        if ctx.model.spec.interruptible and decision.get("slots"):
            if not await self._relocate(ctx, member, view):
                await self._follow_windows(ctx, member, member_job, decision, view)
            return
        phase = PHASE_OF_PROGRESS[progress]
        if phase == JobPhase.SUSPENDED:  # never left suspended without a plan for it
            await self._suspend(ctx, member, member_job, False)
            phase = JobPhase.DISPATCHED
        if phase == JobPhase.DISPATCHED and (member_job.get("status") or {}).get("startTime"):
            await self._check_pods(ctx, member, member_job, view)
        elif phase == JobPhase.RUNNING and \
                ctx.condition_of(JobConditionType.DISPATCHED).get("reason") == JobReason.MEMBER_PODS_REFUSED:
            ctx.condition(JobConditionType.DISPATCHED, True, JobReason.PODS_CREATED, f"the Job's pods run in {target}",
                          view.now)
        if ctx.current("phase") != phase:
            ctx.set(phase=phase, message=f"{phase.lower()} in {target}")

    def _lost(self, ctx: JobContext, member: MemberCluster, ref: dict[str, Any], view: CycleView) -> None:
        """The copy is gone although nothing recorded its end: reported, never run a second time."""
        message = (f"Job {ref['namespace']}/{ref['name']} vanished from {member.metadata.name} before its end was "
                   "recorded (deleted without its record-completion finalizer?); it is not run again")
        ended(ctx, JobPhase.FAILED, JobReason.MEMBER_JOB_LOST, message, view.now)
        ctx.event(JobReason.MEMBER_JOB_LOST, message, warning=True)

    def _deleted_in_member(self, ctx: JobContext, member: MemberCluster, member_job: dict[str, Any],
                           view: CycleView) -> None:
        """Someone deleted the running copy in the member: recorded as failed, then let go."""
        meta = member_job["metadata"]
        message = (f"Job {meta['namespace']}/{meta['name']} was deleted in {member.metadata.name} before it "
                   "finished; it is not run again")
        ended(ctx, JobPhase.FAILED, JobReason.MEMBER_JOB_DELETED, message, view.now)
        ctx.event(JobReason.MEMBER_JOB_DELETED, message, warning=True)
        release_after_flush(ctx, self.member_jobs, member, member_job)

    async def _check_pods(self, ctx: JobContext, member: MemberCluster, member_job: dict[str, Any],
                          view: CycleView) -> None:
        """A started Job without pods: its pods may be refused (FailedCreate); say so, with the member's words."""
        if self.clock.monotonic() - self._pods_checked.get(ctx.uid, float("-inf")) < PODS_CHECK_S:
            return
        self._pods_checked[ctx.uid] = self.clock.monotonic()
        refused = await self.member_jobs.pods_refused(member, member_job)
        if refused is None:
            return
        message = f"{member.metadata.name} refuses the Job's pods: {refused}"[:1024]
        if ctx.condition_of(JobConditionType.DISPATCHED).get("message") != message:
            ctx.event(JobReason.MEMBER_PODS_REFUSED, message, warning=True)
        ctx.condition(JobConditionType.DISPATCHED, False, JobReason.MEMBER_PODS_REFUSED, message, view.now)
        ctx.set(message=message)

    async def _create_relocated(self, ctx: JobContext, member: MemberCluster, decision: dict[str, Any],
                                view: CycleView) -> None:
        """The copy in the cluster interruptible work was moved to (the old one was removed while suspended)."""
        try:
            created = await self.member_jobs.create(member, ctx.body, suspend=starts_suspended(decision, view.now))
        except (KubeError, Refused) as exc:
            self.member_jobs.failed(member, "create")
            ctx.set(message=f"creating the relocated Job in {member.metadata.name} failed: {exc}")
            return
        meta = created["metadata"]
        ctx.set(memberJob=member_job_ref(member, created), phase=JobPhase.DISPATCHED,
                message=f"dispatched to {member.metadata.name} (relocated)")
        ctx.event(JobReason.RELOCATED, f"created Job {meta['namespace']}/{meta['name']} in {member.metadata.name}: "
                                       "relocated")

    async def _suspend(self, ctx: JobContext, member: MemberCluster, member_job: dict[str, Any], value: bool) -> bool:
        meta = member_job["metadata"]
        try:
            await self.member_jobs.suspend(member, member_job, value)
        except KubeError as exc:
            ctx.set(message=f"could not {'suspend' if value else 'resume'} in {member.metadata.name}: {exc}")
            return False
        ctx.event(JobReason.SUSPENDED if value else JobReason.RESUMED,
                  f"{'suspended' if value else 'resumed'} Job {meta['namespace']}/{meta['name']} in "
                  f"{member.metadata.name} to follow its green windows")
        return True

    async def _follow_windows(self, ctx: JobContext, member: MemberCluster, member_job: dict[str, Any],
                              decision: dict[str, Any], view: CycleView) -> None:
        """Interruptible work runs in its planned windows and is suspended between them."""
        suspend, phase, next_start = window_phase(decision, member_job, view.now)
        if suspend != bool((member_job.get("spec") or {}).get("suspend")):
            if not await self._suspend(ctx, member, member_job, suspend):
                return
        if ctx.current("phase") != phase:
            upcoming = f"; next window {next_start}" if next_start else ""
            ctx.set(phase=phase, message=f"{phase.lower()} in {member.metadata.name}{upcoming}")

    async def _relocate(self, ctx: JobContext, member: MemberCluster, view: CycleView) -> bool:
        """Moves suspended interruptible work to a clearly greener allowed region (if the job allows it)."""
        moved = relocation(ctx, member, view, self.settings)
        if moved is None:
            return False
        target, new = moved
        # Status first (the decision), then the member clusters: a crash in between converges. Not
        # written, nothing is touched: a restart would take a copy in ``target`` for a stray and delete it.
        before = dict(ctx.patch)
        ctx.set(**with_decision(ctx.status, new), savedDisplay=saved_display(new),
                message=f"relocating from {member.metadata.name} to {target.metadata.name}")
        if not await self.flush(ctx):
            ctx.patch = before
            return True  # this cycle's move is off; the suspended copy stays where it is
        copy = view.member_jobs.get(str(member.metadata.name), {}).get(ctx.uid)
        if copy is not None:
            await self.member_jobs.delete(member, copy, ctx.uid)
        await self._create_relocated(ctx, target, new, view)
        return True
