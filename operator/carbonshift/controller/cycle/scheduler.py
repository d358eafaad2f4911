"""The scheduling cycle: observe -> admit -> plan -> act, repeated (docs/operator.md tells it).

Restart safety comes from these rules: member Job names are deterministic (a second create is
409, then adopted); the decision is written to status before the member cluster is changed;
every cycle reconciles "what status says" with "what member clusters have" (a copy in a cluster
other than the decided one deleted); and a member Job is created once: one that went missing is
reported lost, never re-run, and its record-completion finalizer keeps a finished Job until the
hub has recorded how it ended.

Deciding happens in the cycle; the writes it leads to run as one task per job beside it
(``tasks``), and the next cycle leaves a job alone until its writes are done.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

from carbonshift.api import TERMINAL_PHASES, JobConditionType, JobPhase
from carbonshift.controller import dispatch
from carbonshift.controller.cleanup import Cleanup
from carbonshift.controller.clock import Clock
from carbonshift.controller.cycle.admit import Admission
from carbonshift.controller.cycle.context import CycleView, JobContext
from carbonshift.controller.cycle.finish import Finisher
from carbonshift.controller.cycle.follow import PODS_CHECK_S, Follower
from carbonshift.controller.cycle.memberstatus import MemberStatus
from carbonshift.controller.cycle.observe import Observer
from carbonshift.controller.cycle.plan import commitment, commitments, plan_waiting
from carbonshift.controller.cycle.start import Starter
from carbonshift.controller.cycle.timing import is_due, next_due, wait
from carbonshift.controller.kube import KubeApi, KubeError
from carbonshift.controller.memberjobs import MemberJobs
from carbonshift.controller.members import MemberRegistry
from carbonshift.controller.metrics import Metrics
from carbonshift.controller.paths import caj_path
from carbonshift.controller.recorder import EventRecorder
from carbonshift.controller.settings import OperatorSettings
from carbonshift.controller.signalhub import SignalHub
from carbonshift.controller.status import changed
from carbonshift.controller.tasks import Tasks
from carbonshift.controller.world import World
from carbonshift.core import Plan

log = logging.getLogger(__name__)

METRICS_S = 5.0  # the jobs-by-phase gauge is recomputed this often
RESYNC_S = 30.0  # a dispatched job with nothing new is still looked at this often


class Scheduler:
    def __init__(self, hub: KubeApi, registry: MemberRegistry, signals: SignalHub, clock: Clock,
                 settings: OperatorSettings, metrics: Metrics, world: World | None = None) -> None:
        self.hub = hub
        self.registry = registry
        self.signals = signals
        self.clock = clock
        self.settings = settings
        self.metrics = metrics
        self.world = world or World()
        self.recorder = EventRecorder(hub, metrics)
        # Writes run as tasks beside the cycle (a slow API server must not hold back planning);
        # this bounds how many jobs have writes in flight at once.
        self.tasks = Tasks(settings.api_workers * 4)
        self.member_jobs = MemberJobs(registry, metrics, settings.pod_security_level)
        self.member_jobs.hub_id = settings.hub_id  # read from the hub at start when not set
        status = MemberStatus(hub, self.world, registry, self.recorder, clock)
        self.observer = Observer(self.world, registry, signals, self.member_jobs, status, clock, metrics)
        self.admission = Admission(self.world, settings, clock)
        self.starter = Starter(self.member_jobs, registry, metrics, clock, self.flush)
        finisher = Finisher(signals, self.member_jobs, metrics, clock, settings)
        self.follower = Follower(self.member_jobs, finisher, clock, settings, self.flush)
        self.cleanup = Cleanup(hub, self.world, registry, self.member_jobs, self.tasks, clock, self.wake)
        self._wake = asyncio.Event()
        # Jobs with writes in flight are out of the cycle's contexts until they end: the capacity
        # their decision holds (a dispatch not yet answered above all) is kept here for the planner.
        self._held: dict[str, Plan] = {}  # job uid -> capacity held while its task runs
        self._dispatching: set[str] = set()  # job uids whose dispatch is in flight
        self._quiet: dict[str, tuple[Any, float]] = {}  # dispatched job uid -> (what it looked like, when)
        self._backlog = False  # due jobs left for want of room in the last cycle
        self._metrics_updated = float("-inf")  # monotonic time the jobs-by-phase gauge was computed
        self._unplaced_reasons: set[str] = set()  # reasons seen: their gauge goes back to 0, not stale

    @property
    def hub_id(self) -> str:
        """This hub's id on member Jobs (label carbonshift.io/hub)."""
        return self.member_jobs.hub_id

    # ----- loop --------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self._identify(stop)
            await self._loop(stop)
        finally:
            await self.close()

    async def settle(self, timeout: float | None = None) -> None:
        """Waits for the writes in flight (those the last cycle started, and what they started)."""
        await self.tasks.settle(timeout)

    async def close(self) -> None:
        # Writes in flight finish (bounded by the request timeouts): a status write that was
        # cut short is repeated by the next leader, but finishing is cheaper.
        await self.settle(timeout=20)
        await self.member_jobs.stop()
        await self.recorder.aclose()

    async def _identify(self, stop: asyncio.Event) -> None:
        """This hub's id on member Jobs; nothing is done in a member before it is known."""
        attempt = 0
        while not self.hub_id and not stop.is_set():
            try:
                self.member_jobs.hub_id = await dispatch.read_hub_id(self.hub)
                log.info("hub id %s (the hub's kube-system namespace UID)", self.hub_id)
            except KubeError as exc:
                attempt += 1
                log.error("cannot read the hub's kube-system namespace for the hub id (set hubId, or grant get on "
                          "namespaces/kube-system): %s", exc)
                await asyncio.sleep(min(30.0, 2.0 * attempt))

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                due = await self.cycle()
            except Exception:  # one bad cycle must not stop the operator; the next one retries
                log.exception("scheduling cycle failed")
                due = None
            self.metrics.cycle_seconds.observe(time.monotonic() - started)
            timeout = self.settings.cycle_seconds
            if due is not None:
                timeout = min(timeout, max(0.05, self.clock.seconds_until(due)))
            self._wake.clear()
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            if self._wake.is_set() and not stop.is_set():
                await asyncio.sleep(0.05)  # let a burst of watch events land in one cycle

    # ----- one cycle ---------------------------------------------------------------------
    async def cycle(self) -> datetime | None:
        """Runs one cycle; returns the next moment something is due (a start or a slot edge)."""
        # 1. Observe: members, signals, the Jobs this hub made in each member.
        view = await self.observer.observe()
        self.cleanup.relist_hub()
        self.cleanup.finalize_deleted()
        # 2. Admit: parse and validate each active job; invalid ones say why.
        contexts, invalid, live = self.admission.admit(view, self.tasks.busy)
        self._forget_except(live)
        for ctx in invalid:
            self._write(ctx)
        waiting = [c for c in contexts if not c.current("memberJob")]
        dispatched = [c for c in contexts if c.current("memberJob")]
        # 3. Plan: all waiting jobs together, running ones and those being dispatched holding their capacity.
        if waiting:
            held = commitments(dispatched, view, self.settings.min_watts_per_cpu) + list(self._held.values())
            plan_waiting(waiting, held, view, self.settings)
        # 4. Act: decisions to status; due jobs started, dispatched ones followed.
        due = [c for c in waiting if is_due(c, view.now)]
        for ctx in waiting:
            if not is_due(ctx, view.now):
                wait(ctx)
                self._write(ctx, ctx.plan)
        # A bounded number of dispatches in flight keeps room for the other jobs' writes under a
        # burst; the rest are dispatched by the next cycles, started as dispatches finish.
        room = max(0, self.settings.max_dispatch_per_cycle - len(self._dispatching))
        self._backlog = len(due) > room
        for ctx in due[:room]:
            # Held from now, whatever its plan said, until the member Job is in its status (or
            # the dispatch failed): a run-now plan for a missed deadline holds room like any other.
            self._dispatching.add(ctx.uid)
            self._spawn(ctx, self.starter.start(ctx, view),
                        commitment(ctx, view, self.settings.min_watts_per_cpu, begin=view.now))
        for ctx in dispatched:
            if self._needs_attention(ctx, view):
                self._spawn(ctx, self.follower.follow(ctx, view), commitment(ctx, view, self.settings.min_watts_per_cpu))
        # Garbage: member Jobs whose CarbonAwareJob is gone.
        self.cleanup.collect_orphans(view)
        self._update_job_metrics()
        return next_due(contexts, view.now)

    def _forget_except(self, live: set[str]) -> None:
        for uid in set(self._quiet) - live:
            del self._quiet[uid]
        self.starter.forget_except(live)
        self.follower.forget_except(live)

    def _needs_attention(self, ctx: JobContext, view: CycleView) -> bool:
        """Whether a dispatched job may need anything this cycle.

        Cycles run on every watch event; with thousands of jobs running, acting on each of them
        every time would be thousands of tasks per cycle for nothing. A job is looked at when its
        own object, a copy of it in a member, or its member's reachability changed, when it
        follows green windows (edges come with time), and at least every RESYNC_S.
        """
        decision = ctx.current("decision") or {}
        if changed(ctx.status, ctx.patch) or (ctx.model.spec.interruptible and decision.get("slots")):
            return True
        target = decision.get("cluster") or (ctx.current("memberJob") or {}).get("cluster")
        fingerprint = (ctx.body["metadata"].get("resourceVersion"), target in view.healthy,
                       tuple(sorted((name, jobs[ctx.uid]["metadata"].get("resourceVersion"))
                                    for name, jobs in view.member_jobs.items() if ctx.uid in jobs)))
        known = self._quiet.get(ctx.uid)
        now = self.clock.monotonic()
        # A Job without pods yet is looked at more often: its pods may be refused (FailedCreate).
        resync = PODS_CHECK_S if ctx.current("phase") == JobPhase.DISPATCHED else RESYNC_S
        if known is not None and known[0] == fingerprint and now - known[1] < resync:
            return False
        self._quiet[ctx.uid] = (fingerprint, now)
        return True

    # ----- writes ------------------------------------------------------------------------
    def _write(self, ctx: JobContext, held: Plan | None = None) -> None:
        """The job's status patch and Events, if it has any, as its task (holding ``held`` meanwhile)."""
        if changed(ctx.status, ctx.patch) or ctx.events:
            self._hold(ctx, held)
            self.tasks.spawn(ctx.uid, self.flush(ctx), ctx.key, lambda: self._hold(ctx, None))

    def _spawn(self, ctx: JobContext, action: Coroutine[Any, Any, None], held: Plan | None) -> None:
        """Runs ``action`` then writes the status, as the job's task (holding ``held`` meanwhile)."""

        async def act_and_flush() -> None:
            await action
            await self.flush(ctx)

        def done() -> None:
            # The status written (or not) by now says what the job holds: the next cycle counts it.
            self._held.pop(ctx.uid, None)
            if ctx.uid in self._dispatching:
                self._dispatching.discard(ctx.uid)
                if self._backlog and len(self._dispatching) <= self.settings.max_dispatch_per_cycle // 2:
                    self.wake()  # room for the due jobs that waited (not once per job: planning costs)

        self._hold(ctx, held)
        self.tasks.spawn(ctx.uid, act_and_flush(), ctx.key, done)

    def _hold(self, ctx: JobContext, held: Plan | None) -> None:
        if held is not None:
            self._held[ctx.uid] = held
        else:
            self._held.pop(ctx.uid, None)

    async def flush(self, ctx: JobContext) -> bool:
        """Writes the status patch; then (only once the hub holds it) the member calls that waited
        for it, and the Events. False when the hub did not take the patch (kept in ``ctx.patch``)."""
        patch = changed(ctx.status, ctx.patch)
        if patch:
            meta = ctx.body["metadata"]
            try:
                result = await self.hub.merge_patch(caj_path(meta["namespace"], meta["name"], "status"),
                                                    {"status": patch})
            except KubeError as exc:
                log.warning("status of %s: %s", ctx.key, exc)
                return False
            first_decision = "decision" in patch and not ctx.status.get("decision")
            ctx.status = dict(result.get("status") or {}) if result else {**ctx.status, **patch}
            if result:
                self.world.remember(result)
            seen = self.world.first_seen.pop(ctx.uid, None) if first_decision else None
            if seen is not None:  # measured when it is written, not planned
                self.metrics.decision_latency.observe(time.monotonic() - seen)
        ctx.patch = {}
        after, ctx.after_flush = ctx.after_flush, []
        for work in after:  # only once the hub holds the record
            try:
                await work()
            except KubeError as exc:  # retried by the orphan scan (a recorded job's copy is released)
                log.info("after the status of %s: %s", ctx.key, exc)
        events, ctx.events = ctx.events, []
        for reason, message, warning in events:
            self.recorder.record(ctx.body, reason, message, warning=warning)
        return True

    def _update_job_metrics(self) -> None:
        if self.clock.monotonic() - self._metrics_updated < METRICS_S:
            return  # walks every job held: not on every cycle
        self._metrics_updated = self.clock.monotonic()
        phases = Counter((b.get("status") or {}).get("phase") or JobPhase.PENDING for b in self.world.jobs.values())
        for phase in JobPhase:
            self.metrics.jobs.labels(phase=phase).set(phases.get(phase, 0))
        # Jobs the planner could not place (NoCapacity, NoAllowedRegion, ...): reported as such, never as savings.
        unplaced: Counter[str] = Counter()
        for body in self.world.jobs.values():
            status = body.get("status") or {}
            if status.get("phase") in TERMINAL_PHASES:
                continue
            for cond in status.get("conditions") or []:
                if cond.get("type") == JobConditionType.SCHEDULED and cond.get("status") == "False":
                    unplaced[str(cond.get("reason") or "Unknown")] += 1
        for reason in self._unplaced_reasons | set(unplaced):
            self.metrics.unplaced.labels(reason=reason).set(unplaced.get(reason, 0))
        self._unplaced_reasons |= set(unplaced)
