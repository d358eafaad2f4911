"""The scheduling cycle: snapshot -> plan -> act, repeated.

One cycle (1) probes member clusters and reads their signals, (2) lists the Jobs carbonshift
owns in each reachable member, (3) plans every waiting CarbonAwareJob together with the pure
core (jobs already running hold their capacity), then (4) acts: writes decisions to status,
dispatches jobs whose start has come, mirrors member Jobs back, suspends and resumes
interruptible work, relocates it when worth it, and accounts for emissions.

Restart safety comes from these rules: member Job names are deterministic (a second create is
409, then adopted); the decision is written to status before the member cluster is changed;
every cycle reconciles "what status says" with "what member clusters have" (a copy in a cluster
other than the decided one deleted); and a member Job is created once: one that went missing is
reported lost, never re-run, and its record-completion finalizer keeps a finished Job until the
hub has recorded how it ended.

What is done to member Jobs lives in ``dispatch`` (dry run, create/adopt, release, delete);
what is left of deleted jobs is collected by ``cleanup`` (a mixin run beside the cycle).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import numpy as np
from pydantic import ValidationError

from carbonshift.api import CarbonAwareJob, CarbonPolicySpec, MemberCluster
from carbonshift.api.common import PodSecurityLevel
from carbonshift.api.job import JobReason
from carbonshift.api.policy import SignalFallback
from carbonshift.core import Job, Plan, PlannerOptions, ReasonCode, RegionSignals, build_snapshot, plan_job, plan_jobs
from carbonshift.controller.clock import Clock
from carbonshift.controller.kube import KubeApi, KubeError
from carbonshift.controller.paths import caj_path, job_path, member_cluster_path
from carbonshift.controller import dispatch
from carbonshift.controller.cleanup import Cleanup
from carbonshift.controller.dispatch import Refused
from carbonshift.controller.manifests import (
    ANNOTATION_SOURCE, FINALIZER_RECORD, build_member_job, hub_selector, job_progress,
)
from carbonshift.controller.members import MemberRegistry
from carbonshift.controller.memberwatch import MemberJobCache
from carbonshift.controller.metrics import Metrics
from carbonshift.controller.recorder import EventRecorder
from carbonshift.controller.settings import OperatorSettings
from carbonshift.controller.signalhub import RegionReading, SignalHub
from carbonshift.controller.status import changed, same_decision, with_condition, with_decision
from carbonshift.controller.translate import (admission_reasons, core_job, decision_from_plan, job_power_w,
                                              planner_options, saved_display)
from carbonshift.controller.validation import (
    EffectivePolicy, allowed_regions, job_problems, resolve_policy, usable_members,
)
from carbonshift.controller.world import TERMINAL, World
from carbonshift.timefmt import parse_iso, to_iso

log = logging.getLogger(__name__)

LAST_SEEN_RESOLUTION = timedelta(minutes=1)  # a reachable member's lastSeen is refreshed this often
SYNC_WAIT_S = 5.0  # how long a cycle waits for a member's first list of Jobs
MEMBER_COUNT_S = 10.0  # a MemberCluster's runningJobs is recounted (and written) this often
METRICS_S = 5.0  # the jobs-by-phase gauge is recomputed this often
RESYNC_S = 30.0  # a dispatched job with nothing new is still looked at this often
PODS_CHECK_S = 10.0  # a started member Job without pods is asked about refused pods this often


@dataclass
class JobContext:
    """One job in this cycle: its parsed form and what the cycle worked out about it."""

    body: dict[str, Any]
    model: CarbonAwareJob
    policy: EffectivePolicy
    regions: tuple[str, ...]
    status: dict[str, Any]
    patch: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, bool]] = field(default_factory=list)
    plan: Plan | None = None  # this cycle's plan, when it holds capacity
    # Member calls that may only run once the status is written (e.g. releasing a finished copy).
    after_flush: list[Any] = field(default_factory=list)

    @property
    def key(self) -> str:
        return f"{self.body['metadata'].get('namespace')}/{self.body['metadata'].get('name')}"

    @property
    def uid(self) -> str:
        return str(self.body["metadata"]["uid"])

    @property
    def generation(self) -> int | None:
        return self.body["metadata"].get("generation")

    def current(self, key: str) -> Any:
        return self.patch.get(key, self.status.get(key))

    def set(self, **values: Any) -> None:
        self.patch.update(values)

    def condition(self, type_: str, status: bool, reason: str, message: str, now: datetime) -> None:
        conditions = self.current("conditions") or []
        self.patch["conditions"] = with_condition(conditions, type_, status, reason, message, now, self.generation)

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


class Scheduler(Cleanup):
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
        self._wake = asyncio.Event()
        # Writes run as tasks beside the cycle (a slow API server must not hold back planning);
        # this bounds how many jobs have writes in flight at once.
        self._semaphore = asyncio.Semaphore(settings.api_workers * 4)
        self._inflight: dict[str, asyncio.Task[None]] = {}  # job uid -> its writes in progress
        self._inflight_plans: dict[str, Plan] = {}  # capacity held by dispatches in progress
        self._models: dict[str, tuple[Any, CarbonAwareJob]] = {}  # uid -> (generation, parsed job)
        # uid -> ((generation, config), (policy, problems, regions)): the checks of a job are redone
        # only when it or a MemberCluster/CarbonPolicy spec changed (the Pod Security walk is not free).
        self._checked: dict[str, tuple[Any, tuple[Any, list[str], tuple[str, ...]]]] = {}
        self._member_caches: dict[str, MemberJobCache] = {}
        self._member_seen: dict[str, MemberCluster] = {}  # member -> its model in the last cycle
        self._quiet: dict[str, tuple[Any, float]] = {}  # dispatched job uid -> (what it looked like, when)
        self._member_counted: dict[str, float] = {}  # member -> monotonic time runningJobs was counted
        self._cleanup_after: dict[str, float] = {}  # deleted job uid -> monotonic time of next try
        self._backlog = False  # due jobs left for want of room in the last cycle
        self._orphans_scanned = 0.0  # monotonic time of the last orphan scan
        self._hub_listed = 0.0  # monotonic time of the last metadata list of the hub's jobs
        self._retry_after: dict[str, float] = {}  # job uid -> monotonic time the member may be asked again
        self._pods_checked: dict[str, float] = {}  # job uid -> monotonic time its refused pods were looked for
        self._dispatching: dict[str, tuple[str, str]] = {}  # job uid -> (member, hub namespace) being created
        self.hub_id = settings.hub_id  # read from the hub at start when not set
        self._metrics_updated = 0.0

    # ----- loop --------------------------------------------------------------------------
    def wake(self) -> None:
        self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        try:
            await self._loop(stop)
        finally:
            # Writes in flight finish (bounded by the request timeouts): a status write that was
            # cut short is repeated by the next leader, but finishing is cheaper.
            if self._inflight:
                await asyncio.wait(list(self._inflight.values()), timeout=20)
            for cache in self._member_caches.values():
                await cache.stop()
            await self.recorder.aclose()

    async def _identify(self, stop: asyncio.Event) -> None:
        """This hub's id on member Jobs; nothing is done in a member before it is known."""
        attempt = 0
        while not self.hub_id and not stop.is_set():
            try:
                self.hub_id = await dispatch.read_hub_id(self.hub)
                log.info("hub id %s (the hub's kube-system namespace UID)", self.hub_id)
            except KubeError as exc:
                attempt += 1
                log.error("cannot read the hub's kube-system namespace for the hub id (set hubId, or grant get on "
                          "namespaces/kube-system): %s", exc)
                await asyncio.sleep(min(30.0, 2.0 * attempt))

    async def _loop(self, stop: asyncio.Event) -> None:
        await self._identify(stop)
        while not stop.is_set():
            started = time.monotonic()
            try:
                next_due = await self.cycle()
            except Exception:  # one bad cycle must not stop the operator; the next one retries
                log.exception("scheduling cycle failed")
                next_due = None
            self.metrics.cycle_seconds.observe(time.monotonic() - started)
            timeout = self.settings.cycle_seconds
            if next_due is not None:
                timeout = min(timeout, max(0.05, self.clock.seconds_until(next_due)))
            self._wake.clear()
            waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            if self._wake.is_set() and not stop.is_set():
                await asyncio.sleep(0.05)  # let a burst of watch events land in one cycle

    # ----- one cycle ---------------------------------------------------------------------
    async def cycle(self) -> datetime | None:
        """Runs one cycle; returns the next moment something is due (a start or a slot edge).

        Planning happens here; the writes it leads to run as one task per job (``_spawn``) and
        the next cycle skips jobs whose writes are still in flight.
        """
        view = await self._observe()
        self._relist_hub()
        self._finalize_deleted()
        contexts, invalid = self._contexts(view)
        for ctx in invalid:
            if changed(ctx.status, ctx.patch) or ctx.events:
                self._spawn(ctx, self._flush(ctx))
        waiting = [c for c in contexts if not c.current("memberJob")]
        dispatched = [c for c in contexts if c.current("memberJob")]
        await self._plan_waiting(waiting, dispatched, view)
        due = [c for c in waiting if self._due(c, view.now)]
        for ctx in waiting:
            if not self._due(ctx, view.now):
                self._act_later(ctx)
                if changed(ctx.status, ctx.patch) or ctx.events:
                    self._spawn(ctx, self._flush(ctx))
        # A bounded number of dispatches in flight keeps room for the other jobs' writes under a
        # burst; the rest are dispatched by the next cycles, started as dispatches finish.
        room = max(0, self.settings.max_dispatch_per_cycle - len(self._inflight_plans))
        self._backlog = len(due) > room
        for ctx in due[:room]:
            if ctx.plan is not None:
                self._inflight_plans[ctx.uid] = ctx.plan
            self._spawn(ctx, self._act_and_flush(ctx, self._act_waiting(ctx, view)))
        for ctx in dispatched:
            if self._needs_attention(ctx, view):
                self._spawn(ctx, self._act_and_flush(ctx, self._act_dispatched(ctx, view)))
        self._collect_orphans(view)
        self._update_job_metrics()
        return self._next_due(contexts, view.now)

    def _needs_attention(self, ctx: JobContext, view: CycleView) -> bool:
        """Whether a dispatched job may need anything this cycle.

        Cycles run on every watch event; with thousands of jobs running, acting on each of them
        every time would be thousands of tasks per cycle for nothing. A job is looked at when its
        own object, a copy of it in a member, or its member's reachability changed, when it
        follows green windows (edges come with time), and at least every RESYNC_S.
        """
        if changed(ctx.status, ctx.patch) or (ctx.model.spec.interruptible and (ctx.current("decision") or {}).get("slots")):
            return True
        decision = ctx.current("decision") or {}
        target = decision.get("cluster") or (ctx.current("memberJob") or {}).get("cluster")
        fingerprint = (ctx.body["metadata"].get("resourceVersion"), target in view.healthy,
                       tuple(sorted((name, jobs[ctx.uid]["metadata"].get("resourceVersion"))
                                    for name, jobs in view.member_jobs.items() if ctx.uid in jobs)))
        known = self._quiet.get(ctx.uid)
        now = time.monotonic()
        # A Job without pods yet is looked at more often: its pods may be refused (FailedCreate).
        resync = PODS_CHECK_S if ctx.current("phase") == "Dispatched" else RESYNC_S
        if known is not None and known[0] == fingerprint and now - known[1] < resync:
            return False
        self._quiet[ctx.uid] = (fingerprint, now)
        return True

    def _spawn(self, ctx: JobContext, work: Any) -> None:
        """Runs one job's writes as a task; the job is left alone by cycles until it ends."""
        self._spawn_work(ctx.uid, work, ctx.key)

    def _spawn_work(self, uid: str, work: Any, what: str | None = None) -> None:
        async def run() -> None:
            try:
                async with self._semaphore:
                    await work
            except Exception:  # one job's failure must not touch the others; the next cycle retries
                log.exception("acting on %s failed", what or uid)
            finally:
                self._inflight.pop(uid, None)
                if self._inflight_plans.pop(uid, None) is not None and self._backlog \
                        and len(self._inflight_plans) <= self.settings.max_dispatch_per_cycle // 2:
                    self.wake()  # room for the due jobs that waited (not once per job: planning costs)

        self._inflight[uid] = asyncio.create_task(run(), name=f"work-{what or uid}")

    async def _act_and_flush(self, ctx: JobContext, action: Any) -> None:
        await action
        await self._flush(ctx)

    def _due(self, ctx: JobContext, now: datetime) -> bool:
        decision = ctx.current("decision")
        if not decision or ctx.patch.get("phase") == "Pending":
            return False
        return ctx.policy.dry_run or parse_iso(decision["start"]) <= now

    async def _observe(self) -> CycleView:
        # Whole seconds: the planning grid starts exactly at "now", so "run now" is slot 0.
        now = self.clock.now().replace(microsecond=0)
        members: dict[str, MemberCluster] = {}
        for name, body in sorted(self.world.members.items()):
            try:
                members[name] = MemberCluster.model_validate(body)
            except ValidationError as exc:
                log.warning("MemberCluster %s is not usable: %s", name, exc)
        healths = await asyncio.gather(*(self.registry.probe(m) for m in members.values()))
        healthy = {n: m for (n, m), h in zip(members.items(), healths) if h.ready}
        for (name, _), health in zip(members.items(), healths):
            self.metrics.member_ready.labels(cluster=name).set(1 if health.ready else 0)
        region_member: dict[str, MemberCluster] = {}
        for name in sorted(healthy):
            region_member.setdefault(healthy[name].spec.region, healthy[name])
        readings_list = await asyncio.gather(*(self.signals.read(m, now) for m in region_member.values()))
        readings = {r.region: r for r in readings_list}
        for reading in readings_list:
            age = reading.age(now)
            if age is not None:
                self.metrics.signal_age.labels(region=reading.region).set(age.total_seconds())
            if reading.current_g_per_kwh is not None:
                self.metrics.signal_intensity.labels(region=reading.region).set(reading.current_g_per_kwh)
        member_jobs: dict[str, dict[str, dict[str, Any]]] = {}

        async def list_jobs(member: MemberCluster) -> None:
            name = member.metadata.name
            cache = self._member_cache(member)
            if not cache.synced.is_set():
                try:
                    await asyncio.wait_for(cache.synced.wait(), timeout=SYNC_WAIT_S)
                except asyncio.TimeoutError:
                    self.registry.mark_unreachable(name, cache.error or f"{name}: its Jobs could not be listed yet")
                    healthy.pop(name, None)
                    return
            member_jobs[name] = dict(cache.jobs)  # a snapshot: the watch goes on changing the cache

        for gone in set(self._member_caches) - set(members):
            self._member_seen.pop(gone, None)
            await self._member_caches.pop(gone).stop()
        await asyncio.gather(*(list_jobs(m) for m in list(healthy.values())))
        await asyncio.gather(*(self._member_status(m, m.metadata.name in healthy, readings.get(m.spec.region),
                                                   member_jobs.get(m.metadata.name), now)
                               for m in members.values()))
        return CycleView(now, members, healthy, region_member, readings, member_jobs)

    def _member_cache(self, member: MemberCluster) -> MemberJobCache:
        """The member's list-then-watch view of this hub's Jobs there (all namespaces)."""
        name = member.metadata.name
        self._member_seen[name] = member  # a reconnect uses its newest kubeconfig reference
        cache = self._member_caches.get(name)
        if cache is None:

            async def api() -> KubeApi:
                return await self.registry.api(self._member_seen[name])

            cache = MemberJobCache(name, hub_selector(self.hub_id), api)
            self._member_caches[name] = cache
        cache.start()
        return cache

    def _cache_of(self, member: MemberCluster) -> MemberJobCache | None:
        return self._member_caches.get(member.metadata.name)

    def _contexts(self, view: CycleView) -> tuple[list[JobContext], list[JobContext]]:
        contexts: list[JobContext] = []
        invalid: list[JobContext] = []
        members = list(view.members.values())
        policies: dict[str, dict[str, CarbonPolicySpec]] = {}
        live: set[str] = set()
        config = self.world.config_fingerprint()
        for (namespace, name), body in self.world.active_jobs():
            meta = body.get("metadata") or {}
            status = body.get("status") or {}
            uid = str(meta.get("uid"))
            live.add(uid)
            if meta.get("deletionTimestamp") or status.get("phase") in TERMINAL or uid in self._inflight:
                continue
            trimmed_against = self.world.trimmed_config((namespace, name))
            if trimmed_against is not None:
                if trimmed_against == config:
                    continue  # invalid, and nothing it depends on changed: its status already says why
                body = self.world.restore((namespace, name))
            try:
                model = self._parsed(uid, body)
            except ValidationError as exc:
                # Accepted by the API server but not by the model (e.g. maxDelay '99999999999h'
                # matches the CRD's pattern but overflows): say so in status, never drop it silently.
                message = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())[:1024]
                if (status.get("message") or "") != f"not valid: {message}":
                    log.warning("CarbonAwareJob %s/%s does not parse: %s", namespace, name, message)
                    ctx = JobContext(body, None, None, (), status)  # type: ignore[arg-type]
                    if not status.get("memberJob"):
                        ctx.set(phase="Pending", observedGeneration=ctx.generation)
                    ctx.set(message=f"not valid: {message}")
                    ctx.condition("Valid", False, "InvalidSpec", message, view.now)
                    ctx.event("Invalid", message, warning=True)
                    invalid.append(ctx)
                else:
                    self._trim_invalid((namespace, name), uid, config)
                continue
            checked = self._checked.get(uid)
            if checked is not None and checked[0] == (meta.get("generation"), config):
                policy, problems, regions = checked[1]
            else:
                if namespace not in policies:
                    policies[namespace] = self.world.namespace_policies(namespace)
                policy, problem = resolve_policy(model, policies[namespace], self.settings.defaults,
                                                self.settings.admin_rules)
                problems = [problem] if problem else job_problems(model, policy, members)  # type: ignore[arg-type]
                regions = allowed_regions(model, policy, members) if policy is not None and not problems else ()
                self._checked[uid] = ((meta.get("generation"), config), (policy, problems, regions))
            if problems or policy is None:
                ctx = JobContext(body, model, policy, (), status)  # type: ignore[arg-type]
                if not status.get("memberJob"):
                    message = "; ".join(problems)
                    ctx.set(phase="Pending", message=f"not valid: {message}", observedGeneration=ctx.generation)
                    if (status.get("message") or "") != f"not valid: {message}":
                        ctx.event("Invalid", message, warning=True)
                    ctx.condition("Valid", False, "InvalidSpec", message, view.now)
                    invalid.append(ctx)
                    if not (changed(ctx.status, ctx.patch) or ctx.events):
                        self._trim_invalid((namespace, name), uid, config)
                    continue
                # Already running: a later edit cannot be honoured, but the run is not abandoned.
                policy = policy or resolve_policy(model, {}, self.settings.defaults, self.settings.admin_rules)[0]
                ctx = JobContext(body, model, policy, (), status)  # type: ignore[arg-type]
                ctx.condition("Valid", False, "InvalidSpec", "; ".join(problems), view.now)
                contexts.append(ctx)
                continue
            ctx = JobContext(body, model, policy, regions, status)
            ctx.condition("Valid", True, "Valid", f"spec is valid; policy from {policy.source}", view.now)
            contexts.append(ctx)
        for uid in set(self._models) - live:
            del self._models[uid]
        for table in (self._checked, self._quiet, self._retry_after, self._pods_checked):
            for uid in set(table) - live:
                del table[uid]
        return contexts, invalid

    def _trim_invalid(self, key: tuple[str, str], uid: str, config: tuple[Any, ...]) -> None:
        """An invalid job whose status already says so is held as text until it or the config changes."""
        self.world.trim_invalid(key, config)
        self._models.pop(uid, None)

    def _parsed(self, uid: str, body: dict[str, Any]) -> CarbonAwareJob:
        """The job's model, parsed again only when its spec changed (a new generation)."""
        generation = (body.get("metadata") or {}).get("generation")
        cached = self._models.get(uid)
        if cached is not None and cached[0] == generation:
            return cached[1]
        model = CarbonAwareJob.model_validate({k: v for k, v in body.items() if k != "status"})
        self._models[uid] = (generation, model)
        return model

    # ----- planning ----------------------------------------------------------------------
    def _region_signals(self, view: CycleView, fresh_only: bool, max_age: timedelta) -> list[RegionSignals]:
        signals = []
        for region, reading in sorted(view.readings.items()):
            age = reading.age(view.now)
            stale = reading.error is not None or age is None or age > max_age
            if stale and fresh_only:
                n = reading.signals.n_slots
                signals.append(reading.signals.with_intensity(np.full(n, np.nan)))
            else:
                signals.append(reading.signals)
        return signals

    def _commitments(self, dispatched: list[JobContext], view: CycleView) -> list[Plan]:
        """Running work holds capacity in its region for the rest of its planned time."""
        if not view.readings:
            return []
        any_reading = next(iter(view.readings.values())).signals
        start, slot, n = any_reading.start, any_reading.slot, any_reading.n_slots
        plans = []
        for ctx in dispatched:
            decision = ctx.current("decision") or {}
            if ctx.current("phase") == "Suspended" or not decision.get("region"):
                continue
            begin = parse_iso(decision["start"])
            end = begin + ctx.model.spec.estimated_duration
            first = max(0, int((begin - start) / slot))
            last = min(n, math.ceil((end - start) / slot))
            if last <= first:
                continue
            slots = tuple(range(first, last))
            power = job_power_w(ctx.model, self.settings.min_watts_per_cpu).watts
            plans.append(Plan(job_id=ctx.key, feasible=True, region=decision["region"], start=begin, end=end,
                              slots=slots, slot_fractions=(1.0,) * len(slots), it_power_w=power,
                              facility_power_w=power, expected_g=0.0, baseline_g=0.0, reasons=()))
        return plans

    async def _plan_waiting(self, waiting: list[JobContext], dispatched: list[JobContext], view: CycleView) -> None:
        if not waiting:
            return
        commitments = self._commitments(dispatched, view) + list(self._inflight_plans.values())
        groups: dict[tuple[Any, ...], list[JobContext]] = {}
        for ctx in waiting:
            fresh_only = ctx.policy.signal_fallback == SignalFallback.RUN_NOW
            key = (fresh_only, ctx.policy.max_signal_age, ctx.policy.forecast_safety_margin,
                   ctx.policy.run_now_below_g_per_kwh)
            groups.setdefault(key, []).append(ctx)
        for (fresh_only, max_age, _, _), members in groups.items():
            signals = self._region_signals(view, fresh_only, max_age)
            self._mark_staleness(members, view, max_age)
            if not signals:
                for ctx in members:
                    ctx.set(phase="Waiting", message="no reachable member cluster serves the job's regions")
                    ctx.condition("Scheduled", False, "NoReachableCluster",
                                  f"none of {list(ctx.regions)} has a reachable MemberCluster", view.now)
                continue
            snapshot = build_snapshot(signals)
            jobs = [self._core_job(ctx, view.now) for ctx in members]
            options = planner_options(members[0].policy)
            try:
                plans: list[Plan | None] = list(plan_jobs(jobs, snapshot, commitments, options))
            except Exception:  # one job must never block the others: plan them one by one
                log.exception("batch planning failed; planning jobs one by one")
                plans = [self._plan_one(ctx, job, snapshot, commitments, options, view) for ctx, job in zip(members, jobs)]
            for ctx, job, plan in zip(members, jobs, plans):
                if plan is None:
                    continue
                self._adopt_plan(ctx, job, plan, view)
                if plan.feasible and plan.region:
                    commitments.append(plan)
                    ctx.plan = plan

    def _plan_one(self, ctx: JobContext, job: Job, snapshot: Any, commitments: list[Plan], options: PlannerOptions,
                  view: CycleView) -> Plan | None:
        try:
            return plan_job(job, snapshot, commitments, options)
        except Exception as exc:
            log.exception("planning %s failed", ctx.key)
            ctx.set(phase="Waiting", message=f"the planner failed on this job ({type(exc).__name__}); retrying")
            ctx.condition("Scheduled", False, "PlannerError", f"{type(exc).__name__}: {exc}"[:1024], view.now)
            return None

    def _core_job(self, ctx: JobContext, now: datetime) -> Job:
        return core_job(ctx.model, ctx.policy, ctx.regions, self._submitted(ctx, now), earliest=now,
                        min_watts_per_cpu=self.settings.min_watts_per_cpu)

    def _submitted(self, ctx: JobContext, now: datetime) -> datetime:
        """Submission time on the operator's clock (the accelerated demo clock maps real times)."""
        created = ctx.model.metadata.creation_timestamp
        return self.clock.from_real(created) if created is not None else now

    def _mark_staleness(self, contexts: list[JobContext], view: CycleView, max_age: timedelta) -> None:
        for ctx in contexts:
            stale = []
            for region in ctx.regions:
                reading = view.readings.get(region)
                if reading is None:
                    continue
                age = reading.age(view.now)
                if reading.error or age is None or age > max_age:
                    what = reading.error or (f"newest value is {age} old" if age else "no value")
                    stale.append(f"{region}: {what}")
            if stale:
                ctx.condition("SignalsStale", True, "SignalsStale",
                              f"{'; '.join(stale)} (policy fallback: {ctx.policy.signal_fallback})", view.now)
            else:
                ctx.condition("SignalsStale", False, "SignalsFresh", "all signals are fresh", view.now)

    def _adopt_plan(self, ctx: JobContext, job: Job, plan: Plan, view: CycleView) -> None:
        """Hysteresis: keep the current decision unless the new plan is clearly better or it must change."""
        now = view.now
        old = ctx.current("decision")
        # A deadline that cannot be met any more is no reason to wait: run now, best effort, and say so.
        deadline_near = bool({ReasonCode.RUN_NOW_DEADLINE_NEAR, ReasonCode.DEADLINE_UNMEETABLE} & set(plan.codes))
        namespace = str(ctx.body["metadata"].get("namespace"))
        member = view.member_for(plan.region, namespace) if plan.region else None
        if member is None or (not plan.feasible and ReasonCode.DEADLINE_UNMEETABLE not in plan.codes):
            message = "; ".join(r.message for r in plan.reasons) or "no feasible plan"
            ctx.set(phase="Waiting", message=message, observedGeneration=ctx.generation)
            ctx.condition("Scheduled", False, plan.reasons[0].code.value if plan.reasons else "NoPlan", message, now)
            return
        decision = decision_from_plan(plan, member.metadata.name, now, ctx.model.spec.interruptible,
                                      admission_reasons(ctx.model, ctx.policy, self._submitted(ctx, now),
                                                        self.settings.min_watts_per_cpu))
        keep_reason = None
        if old and ctx.status.get("observedGeneration") == ctx.generation:
            old_start = parse_iso(old["start"])
            if old_start <= now and view.usable(old.get("cluster"), namespace) and old.get("region") in ctx.regions:
                # Due and still possible: it is dispatched as decided (maybe a cycle later under a
                # burst); re-deciding it every cycle would only churn status and Events.
                return
            margin = job.duration * ctx.policy.forecast_safety_margin
            old_ok = (view.usable(old.get("cluster"), namespace) and old.get("region") in ctx.regions
                      and max(old_start, now) + job.duration + margin <= job.deadline)
            must_run_now = deadline_near
            if old_ok and not must_run_now and old_start <= now:
                keep_reason = "start reached"
            elif old_ok and not must_run_now:
                threshold = float(old.get("expectedGrams") or 0.0) * (1.0 - self.settings.replan_min_improvement)
                if decision["expectedGrams"] >= threshold:
                    keep_reason = "gain below hysteresis"
        if keep_reason is not None or same_decision(old, decision):
            return
        if old and old.get("baselineGrams") is not None and ctx.status.get("observedGeneration") == ctx.generation:
            # The baseline is "run at submission in the home region": it does not move on re-plans.
            decision["baselineGrams"] = old["baselineGrams"]
            decision["savedGrams"] = round(old["baselineGrams"] - decision["expectedGrams"], 3)
        if ctx.policy.dry_run:
            decision["reasons"].append({"code": "DryRun", "message": f"{ctx.policy.source} is dry-run: "
                                        "the decision is reported but the job runs at once"})
        ctx.set(**with_decision(ctx.status, decision), savedDisplay=saved_display(decision),
                observedGeneration=ctx.generation)
        first = old is None
        summary = _summary(decision, plan)
        ctx.set(message=summary)
        ctx.condition("Scheduled", True, decision["reasons"][0]["code"] if decision["reasons"] else "Planned",
                      summary, now)
        ctx.condition("DeadlineAtRisk", deadline_near, "RunNowDeadlineNear" if deadline_near else "DeadlineSafe",
                      "the deadline leaves no room to wait: running now" if deadline_near
                      else f"planned to finish before {to_iso(job.deadline)}", now)
        if not (first and (parse_iso(decision["start"]) <= now or ctx.policy.dry_run)):
            ctx.event("Decided" if first else "Replanned", summary)  # else the Dispatched event says it

    # ----- acting: waiting jobs ------------------------------------------------------------
    def _act_later(self, ctx: JobContext) -> None:
        """A decided job whose start has not come: it waits (no API call unless its phase changes)."""
        if ctx.current("decision") and ctx.patch.get("phase") != "Pending" and ctx.current("phase") != "Waiting":
            ctx.set(phase="Waiting")

    async def _act_waiting(self, ctx: JobContext, view: CycleView) -> None:
        decision = ctx.current("decision")
        if not decision or ctx.patch.get("phase") == "Pending":
            return
        start = parse_iso(decision["start"])
        if start > view.now and not ctx.policy.dry_run:
            if ctx.current("phase") != "Waiting":
                ctx.set(phase="Waiting")
            return
        if not view.usable(decision["cluster"], str(ctx.body["metadata"].get("namespace"))):
            ctx.set(phase="Waiting", message=f"cluster {decision['cluster']} is unreachable or not open to this "
                                             "namespace; re-planning")
            return
        await self._dispatch(ctx, view.healthy[decision["cluster"]], decision, view)

    def _existing_copy(self, ctx: JobContext, view: CycleView) -> tuple[str, dict[str, Any]] | None:
        for name, jobs in view.member_jobs.items():
            if ctx.uid in jobs:
                return name, jobs[ctx.uid]
        return None

    async def _dispatch(self, ctx: JobContext, member: MemberCluster, decision: dict[str, Any],
                        view: CycleView) -> None:
        """Creates the member Job (or adopts the one a previous, interrupted attempt made).

        The member is asked first (dry runs of the Job and of a Pod from its template), so a Job
        its admission refuses is reported in status instead of becoming a Job without pods.
        """
        suspend = bool(decision.get("slots")) and not _in_window(decision, view.now)
        existing = self._existing_copy(ctx, view)
        if existing is not None and existing[0] != member.metadata.name and existing[0] in view.healthy:
            # A copy made before a crash, in another cluster than this cycle's decision: it is the
            # run (it may have started); the decision follows it rather than making a second one.
            member = view.healthy[existing[0]]
            ctx.set(decision={**decision, "cluster": member.metadata.name, "region": member.spec.region})
        try:
            if existing is not None and existing[0] == member.metadata.name:
                created = existing[1]
            else:
                if time.monotonic() < self._retry_after.get(ctx.uid, 0.0):
                    return  # the member refused it a moment ago: asked again later, not every cycle
                full = self._namespace_full(ctx, member)
                if full is not None:
                    ctx.set(phase="Waiting", message=full)
                    ctx.condition("Dispatched", False, "NamespaceShareFull", full, view.now)
                    return
                # Counted at once (no await since the check): concurrent dispatches see each other.
                self._dispatching[ctx.uid] = (member.metadata.name, str(ctx.body["metadata"].get("namespace")))
                try:
                    created = await self._create_member_job(ctx, member, suspend)
                finally:
                    self._dispatching.pop(ctx.uid, None)
        except Refused as refused:
            self._retry_after[ctx.uid] = time.monotonic() + refused.retry_s
            message = f"{member.metadata.name} refuses the Job: {refused.message}"[:1024]
            if refused.reason != JobReason.MEMBER_NAMESPACE_NOT_READY and ctx.status.get("message") != message:
                ctx.event(refused.reason, message, warning=True)  # one Event per new refusal
            ctx.set(phase="Waiting", message=message)
            ctx.condition("Dispatched", False, refused.reason, message, view.now)
            return
        except KubeError as exc:
            self.metrics.dispatch_errors.labels(cluster=member.metadata.name, operation="create").inc()
            message = f"dispatch to {member.metadata.name} failed: {exc}"
            if ctx.status.get("message") != message:  # one Event per new failure, not one per cycle
                ctx.event("DispatchFailed", str(exc), warning=True)
            ctx.set(phase="Waiting", message=message)  # never left without a phase
            ctx.condition("Dispatched", False, "DispatchFailed", str(exc), view.now)
            if exc.unreachable:
                self.registry.mark_unreachable(member.metadata.name, str(exc))
            return
        self._retry_after.pop(ctx.uid, None)
        self.metrics.dispatches.labels(cluster=member.metadata.name).inc()
        meta = created["metadata"]
        ctx.set(phase="Suspended" if suspend else "Dispatched",
                memberJob={"cluster": member.metadata.name, "namespace": meta["namespace"], "name": meta["name"],
                           "uid": meta.get("uid")},
                message=f"dispatched to {member.metadata.name} ({member.spec.region})")
        ctx.condition("Dispatched", True, "Dispatched",
                      f"Job {meta['namespace']}/{meta['name']} created in {member.metadata.name}", view.now)
        ctx.event("Dispatched", f"created Job {meta['namespace']}/{meta['name']} in cluster {member.metadata.name} "
                                f"(region {member.spec.region}). {ctx.current('message') or ''}"[:1024])

    def _namespace_full(self, ctx: JobContext, member: MemberCluster) -> str | None:
        """The admin's fair share: at most maxJobsPerNamespace active Jobs of one hub namespace."""
        limit = member.spec.capacity.max_jobs_per_namespace
        cache = self._cache_of(member)
        if limit is None or cache is None:
            return None
        namespace = str(ctx.body["metadata"].get("namespace"))
        prefix = f"{namespace}/"
        # The live cache (it holds our own creations at once), not the cycle's snapshot.
        active = sum(1 for uid, job in cache.jobs.items()
                     if uid != ctx.uid and job_progress(job) not in TERMINAL
                     and (job["metadata"].get("annotations") or {}).get(ANNOTATION_SOURCE, "").startswith(prefix))
        active += sum(1 for uid, where in self._dispatching.items()
                      if uid != ctx.uid and where == (member.metadata.name, namespace))
        if active < limit:
            return None
        return (f"namespace {namespace} has {active} active Jobs in {member.metadata.name}, its share "
                f"(capacity.maxJobsPerNamespace) is {limit}: waiting for one to end")

    def _level(self, member: MemberCluster) -> str:
        """The admin's Pod Security level for namespaces created in ``member`` (the stricter of the two)."""
        return str(PodSecurityLevel.stricter(self.settings.pod_security_level, member.spec.pod_security_level))

    async def _create_member_job(self, ctx: JobContext, member: MemberCluster, suspend: bool) -> dict[str, Any]:
        api = await self.registry.api(member)
        namespace = member.spec.member_namespace(str(ctx.body["metadata"]["namespace"]))
        manifest = build_member_job(ctx.body, namespace=namespace, member=member.metadata.name,
                                    region=member.spec.region, hub_id=self.hub_id, suspend=suspend)
        await dispatch.prepare(api, member.metadata.name, manifest, create_namespace=member.spec.create_namespaces,
                               level=self._level(member))
        created = await dispatch.create(api, member.metadata.name, manifest, ctx.uid, self.hub_id)
        cache = self._cache_of(member)
        if cache is not None:
            cache.record(created)
        return created

    # ----- acting: dispatched jobs -----------------------------------------------------------
    async def _act_dispatched(self, ctx: JobContext, view: CycleView) -> None:
        ref = ctx.current("memberJob")
        decision = ctx.current("decision") or {}
        target = decision.get("cluster") or ref["cluster"]
        # A copy anywhere but the decided cluster is left over from a relocation: remove it.
        for name, jobs in view.member_jobs.items():
            if name != target and ctx.uid in jobs:
                await self._delete_member_job(view.healthy[name], jobs[ctx.uid], ctx.uid)
        member = view.healthy.get(target)
        if member is None:
            reason = "MemberUnreachable" if target in view.members else "MemberMissing"
            ctx.condition("MemberReachable", False, reason,
                          f"cluster {target} cannot be reached; the Job there is kept and watched", view.now)
            return
        if ctx.current("conditions") and any(c.get("type") == "MemberReachable" for c in ctx.current("conditions")):
            ctx.condition("MemberReachable", True, "MemberReachable", f"cluster {target} is reachable", view.now)
        member_job = view.member_jobs.get(target, {}).get(ctx.uid)
        if member_job is None and ref["cluster"] != target:
            await self._create_relocated(ctx, member, decision, view)  # status already names the new cluster
            return
        if member_job is None:
            member_job = await self._confirm_missing(ctx, member, ref)
            if member_job is None:
                self._lost(ctx, member, ref, view)
                return
        progress = job_progress(member_job)
        if progress in TERMINAL:
            await self._finish(ctx, member, member_job, progress, view)
            return
        if member_job["metadata"].get("deletionTimestamp"):
            self._deleted_in_member(ctx, member, member_job, view)
            return
        if ctx.model.spec.interruptible and decision.get("slots"):
            if await self._maybe_relocate(ctx, member, view):
                return
            await self._follow_windows(ctx, member, member_job, decision, view)
            return
        phase = {"Running": "Running", "Pending": "Dispatched", "Suspended": "Suspended"}[progress]
        if phase == "Suspended":  # never left suspended without a plan for it
            await self._set_suspend(ctx, member, member_job, False, view)
            phase = "Dispatched"
        if phase == "Dispatched" and (member_job.get("status") or {}).get("startTime"):
            await self._check_pods(ctx, member, member_job, view)
        elif phase == "Running" and self._condition(ctx, "Dispatched").get("reason") == "MemberPodsRefused":
            ctx.condition("Dispatched", True, "PodsCreated", f"the Job's pods run in {target}", view.now)
        if ctx.current("phase") != phase:
            ctx.set(phase=phase, message=f"{phase.lower()} in {target}")

    @staticmethod
    def _condition(ctx: JobContext, type_: str) -> dict[str, Any]:
        return next((c for c in ctx.current("conditions") or [] if c.get("type") == type_), {})

    async def _confirm_missing(self, ctx: JobContext, member: MemberCluster,
                               ref: dict[str, Any]) -> dict[str, Any] | None:
        """Asks the member before calling a copy lost: the watch may simply not have shown it yet."""
        api = await self.registry.api(member)
        found = await dispatch.fetch(api, ref["namespace"], ref["name"], ctx.uid, self.hub_id)
        cache = self._cache_of(member)
        if found is not None and cache is not None:
            cache.record(found)
        return found

    def _lost(self, ctx: JobContext, member: MemberCluster, ref: dict[str, Any], view: CycleView) -> None:
        """The copy is gone although nothing recorded its end: reported, never run a second time."""
        message = (f"Job {ref['namespace']}/{ref['name']} vanished from {member.metadata.name} before its end was "
                   "recorded (deleted without its record-completion finalizer?); it is not run again")
        self._ended(ctx, "Failed", "MemberJobLost", message, view)
        ctx.event("MemberJobLost", message, warning=True)

    def _deleted_in_member(self, ctx: JobContext, member: MemberCluster, member_job: dict[str, Any],
                           view: CycleView) -> None:
        """Someone deleted the running copy in the member: recorded as failed, then let go."""
        meta = member_job["metadata"]
        message = (f"Job {meta['namespace']}/{meta['name']} was deleted in {member.metadata.name} before it "
                   "finished; it is not run again")
        self._ended(ctx, "Failed", "MemberJobDeleted", message, view)
        ctx.event("MemberJobDeleted", message, warning=True)
        self._release_after_flush(ctx, member, member_job)

    def _ended(self, ctx: JobContext, phase: str, reason: str, message: str, view: CycleView) -> None:
        """The terminal phase with the Complete and Failed conditions (for kubectl wait)."""
        ctx.set(phase=phase, message=message)
        ctx.condition("Complete", phase == "Succeeded", reason, message, view.now)
        ctx.condition("Failed", phase == "Failed", reason, message, view.now)

    def _release_after_flush(self, ctx: JobContext, member: MemberCluster, member_job: dict[str, Any]) -> None:
        meta = member_job["metadata"]
        if FINALIZER_RECORD not in (meta.get("finalizers") or []):
            return

        async def release() -> None:
            api = await self.registry.api(member)
            await dispatch.release(api, meta["namespace"], meta["name"])

        ctx.after_flush.append(release)

    async def _check_pods(self, ctx: JobContext, member: MemberCluster, member_job: dict[str, Any],
                          view: CycleView) -> None:
        """A started Job without pods: its pods may be refused (FailedCreate); say so, with the member's words."""
        if time.monotonic() - self._pods_checked.get(ctx.uid, 0.0) < PODS_CHECK_S:
            return
        self._pods_checked[ctx.uid] = time.monotonic()
        meta = member_job["metadata"]
        api = await self.registry.api(member)
        refused = await dispatch.pods_refused(api, meta["namespace"], str(meta.get("uid")))
        if refused is None:
            return
        message = f"{member.metadata.name} refuses the Job's pods: {refused}"[:1024]
        if self._condition(ctx, "Dispatched").get("message") != message:
            ctx.event("MemberPodsRefused", message, warning=True)
        ctx.condition("Dispatched", False, "MemberPodsRefused", message, view.now)
        ctx.set(message=message)

    async def _create_relocated(self, ctx: JobContext, member: MemberCluster, decision: dict[str, Any],
                                view: CycleView) -> None:
        """The copy in the cluster interruptible work was moved to (the old one was removed while suspended)."""
        try:
            created = await self._create_member_job(ctx, member, bool(decision.get("slots"))
                                                    and not _in_window(decision, view.now))
        except (KubeError, Refused) as exc:
            self.metrics.dispatch_errors.labels(cluster=member.metadata.name, operation="create").inc()
            ctx.set(message=f"creating the relocated Job in {member.metadata.name} failed: {exc}")
            return
        meta = created["metadata"]
        ctx.set(memberJob={"cluster": member.metadata.name, "namespace": meta["namespace"], "name": meta["name"],
                           "uid": meta.get("uid")}, phase="Dispatched",
                message=f"dispatched to {member.metadata.name} (relocated)")
        ctx.event("Relocated", f"created Job {meta['namespace']}/{meta['name']} in {member.metadata.name}: relocated")

    async def _set_suspend(self, ctx: JobContext, member: MemberCluster, member_job: dict[str, Any], suspend: bool,
                           view: CycleView) -> bool:
        meta = member_job["metadata"]
        api = await self.registry.api(member)
        try:
            patched = await api.merge_patch(job_path(meta["namespace"], meta["name"]), {"spec": {"suspend": suspend}})
            cache = self._cache_of(member)
            if cache is not None and patched:
                cache.record(patched)
        except KubeError as exc:
            self.metrics.dispatch_errors.labels(cluster=member.metadata.name, operation="suspend").inc()
            ctx.set(message=f"could not {'suspend' if suspend else 'resume'} in {member.metadata.name}: {exc}")
            return False
        ctx.event("Suspended" if suspend else "Resumed",
                  f"{'suspended' if suspend else 'resumed'} Job {meta['namespace']}/{meta['name']} in "
                  f"{member.metadata.name} to follow its green windows")
        return True

    async def _follow_windows(self, ctx: JobContext, member: MemberCluster, member_job: dict[str, Any],
                              decision: dict[str, Any], view: CycleView) -> None:
        """Interruptible work runs in its planned windows and is suspended between them."""
        remaining = [w for w in decision["slots"] if parse_iso(w["end"]) > view.now]
        # Past its last window and not done (the estimate ran short): keep running to the end.
        want_suspend = bool(remaining) and not _in_window(decision, view.now)
        is_suspended = bool((member_job.get("spec") or {}).get("suspend"))
        if want_suspend != is_suspended:
            if not await self._set_suspend(ctx, member, member_job, want_suspend, view):
                return
        phase = "Suspended" if want_suspend else ("Running" if job_progress(member_job) == "Running" else "Dispatched")
        if ctx.current("phase") != phase:
            upcoming = f"; next window {remaining[0]['start']}" if want_suspend and remaining else ""
            ctx.set(phase=phase, message=f"{phase.lower()} in {member.metadata.name}{upcoming}")

    async def _maybe_relocate(self, ctx: JobContext, member: MemberCluster, view: CycleView) -> bool:
        """Moves suspended interruptible work to a clearly greener allowed region (if the job allows it)."""
        spec = ctx.model.spec
        decision = ctx.current("decision")
        if not spec.placement.allow_relocation or ctx.current("phase") != "Suspended" or len(view.readings) < 2:
            return False
        future = [w for w in decision["slots"] if parse_iso(w["end"]) > view.now]
        remaining = sum((parse_iso(w["end"]) - max(view.now, parse_iso(w["start"])) for w in future), timedelta())
        if remaining <= timedelta(0):
            return False
        signals = self._region_signals(view, False, ctx.policy.max_signal_age)
        snapshot = build_snapshot(signals)
        base = core_job(ctx.model, ctx.policy, ctx.regions, self._submitted(ctx, view.now), earliest=view.now,
                        min_watts_per_cpu=self.settings.min_watts_per_cpu)
        job = Job(id=base.id, submit_at=view.now, duration=remaining, deadline=base.deadline, power_w=base.power_w,
                  energy_wh=base.energy_wh, allowed_regions=base.allowed_regions, home_region=member.spec.region,
                  interruptible=True)
        options = planner_options(ctx.policy)
        anywhere = plan_job(job, snapshot, (), options)
        if not anywhere.feasible or anywhere.region in (None, member.spec.region):
            return False
        target = view.member_for(anywhere.region, str(ctx.body["metadata"].get("namespace")))
        if target is None:
            return False
        stay = plan_job(Job(**{**job.__dict__, "allowed_regions": (member.spec.region,)}), snapshot, (), options)
        if stay.feasible and anywhere.expected_g >= stay.expected_g * (1.0 - self.settings.replan_min_improvement):
            return False
        new = decision_from_plan(anywhere, target.metadata.name, view.now, True, extra_reasons=[
            {"code": "Relocated", "message": f"moved from {member.spec.region}: remaining work emits "
                                             f"{anywhere.expected_g:.0f} g there instead of {stay.expected_g:.0f} g"}])
        new["baselineGrams"] = decision.get("baselineGrams", new["baselineGrams"])
        new["savedGrams"] = round(new["baselineGrams"] - new["expectedGrams"], 3)
        # Status first (the decision), then the member clusters: a crash in between converges.
        ctx.set(**with_decision(ctx.status, new), savedDisplay=saved_display(new),
                message=f"relocating from {member.metadata.name} to {target.metadata.name}")
        await self._flush(ctx)
        copy = view.member_jobs.get(member.metadata.name, {}).get(ctx.uid)
        if copy is not None:
            await self._delete_member_job(member, copy, ctx.uid)
        await self._create_relocated(ctx, target, new, view)
        return True

    async def _delete_member_job(self, member: MemberCluster, member_job: dict[str, Any], uid: str | None) -> None:
        meta = member_job["metadata"]
        try:
            api = await self.registry.api(member)
            await dispatch.delete(api, meta["namespace"], meta["name"])
            cache = self._cache_of(member)
            if cache is not None and uid is not None:
                cache.forget(uid)
        except KubeError as exc:
            self.metrics.dispatch_errors.labels(cluster=member.metadata.name, operation="delete").inc()
            log.warning("deleting %s/%s in %s: %s", meta["namespace"], meta["name"], member.metadata.name, exc)

    async def _finish(self, ctx: JobContext, member: MemberCluster, member_job: dict[str, Any], progress: str,
                      view: CycleView) -> None:
        decision = ctx.current("decision") or {}
        spec = ctx.model.spec
        hours = spec.estimated_duration.total_seconds() / 3600
        power = job_power_w(ctx.model, self.settings.min_watts_per_cpu).watts
        energy_wh = power * hours * member.spec.pue
        estimated = float(decision.get("expectedGrams") or 0.0)
        start = parse_iso(decision["start"]) if decision.get("start") else view.now
        uses_onsite = any(r.get("code") == ReasonCode.USES_ONSITE_ENERGY.value for r in decision.get("reasons") or [])
        if not uses_onsite and not decision.get("slots"):
            mean = await self.signals.history_mean(member, start, start + spec.estimated_duration)
            if mean is not None:
                estimated = energy_wh / 1000 * mean  # measured intensity over the actual window
        emissions = {"estimatedGrams": round(estimated, 3), "energyWattHours": round(energy_wh, 3)}
        measured = await self._measured_grams(member, member_job, start, spec.estimated_duration)
        if measured is not None:
            emissions["measuredGrams"] = round(measured, 3)
        baseline = float(decision.get("baselineGrams") or estimated)
        ctx.set(emissions=emissions)
        self._ended(ctx, progress, progress, f"{progress.lower()} in {member.metadata.name}: {estimated:.0f} gCO2eq "
                    f"({baseline - estimated:.0f} g saved against running at once in the home region)", view)
        ctx.condition("Dispatched", True, progress, f"Job finished: {progress}", view.now)
        self._release_after_flush(ctx, member, member_job)  # the hub has the record first
        if progress == "Succeeded":
            self.metrics.emitted.labels(region=member.spec.region).inc(estimated)
            self.metrics.saved.labels(region=member.spec.region).inc(max(0.0, baseline - estimated))
        self._count_deadline_miss(ctx, member, member_job, view)
        ctx.event(progress, ctx.current("message"), warning=progress == "Failed")

    # ----- deadline misses (metrics only; alerting rule CarbonshiftDeadlineMissed) ---------------
    def _count_deadline_miss(self, ctx: JobContext, member: MemberCluster, member_job: dict[str, Any],
                             view: CycleView) -> None:
        """carbonshift_deadline_misses_total: the run ended after the job's deadline (on the operator's
        clock; a failed run has no completionTime, so the moment the cycle saw it end counts)."""
        status = member_job.get("status") or {}
        ended = self.clock.from_real(parse_iso(status["completionTime"])) if status.get("completionTime") else view.now
        if ended > self._core_job(ctx, view.now).deadline:  # the deadline the planner planned for
            self.metrics.deadline_misses.labels(hub_namespace=ctx.body["metadata"].get("namespace", ""),
                                                cluster=member.metadata.name).inc()

    async def _measured_grams(self, member: MemberCluster, member_job: dict[str, Any], start: datetime,
                              duration: timedelta) -> float | None:
        """Kepler-measured energy of the run (real timestamps) × PUE × the region's mean intensity."""
        status = member_job.get("status") or {}
        if not member.spec.energy or not status.get("startTime"):
            return None
        began = parse_iso(status["startTime"])
        ended = parse_iso(status["completionTime"]) if status.get("completionTime") else datetime.now(began.tzinfo)
        meta = member_job["metadata"]
        measured_wh = await self.signals.measured_energy_wh(member, meta["namespace"], meta["name"], began, ended)
        if measured_wh is None:
            return None
        mean = await self.signals.history_mean(member, start, start + duration)
        return None if mean is None else measured_wh * member.spec.pue / 1000.0 * mean

    async def _member_status(self, member: MemberCluster, ready: bool, reading: RegionReading | None,
                             jobs: dict[str, dict[str, Any]] | None, now: datetime) -> None:
        body = self.world.members.get(member.metadata.name) or {}
        status = body.get("status") or {}
        health = self.registry.health(member.metadata.name)
        message = health.message if health else "not probed yet"
        desired: dict[str, Any] = {
            "phase": "Ready" if ready else "NotReady",
            "ready": ready,
            "message": message,
            "observedGeneration": body.get("metadata", {}).get("generation"),
            "conditions": with_condition(status.get("conditions") or [], "Ready", ready,
                                         "Reachable" if ready else "Unreachable", message, now,
                                         body.get("metadata", {}).get("generation")),
        }
        recently = time.monotonic() - self._member_counted.get(member.metadata.name, 0.0) < MEMBER_COUNT_S
        if jobs is not None and not recently:  # a count that moves with every job: at most every 10 s
            self._member_counted[member.metadata.name] = time.monotonic()
            desired["runningJobs"] = sum(1 for j in jobs.values() if job_progress(j) == "Running")
        if reading is not None:
            if reading.current_g_per_kwh is not None and reading.observed_at is not None:
                desired["signal"] = {"intensity": round(reading.current_g_per_kwh, 2),
                                     "observedAt": to_iso(reading.observed_at), "source": reading.source[:64]}
            stale = reading.error is not None
            desired["conditions"] = with_condition(desired["conditions"], "SignalsStale", stale,
                                                   "ProviderError" if stale else "Fresh",
                                                   reading.error or f"{reading.kind} from {reading.source}", now,
                                                   body.get("metadata", {}).get("generation"))
        last_seen = status.get("lastSeen")
        if ready and (not last_seen or now - parse_iso(last_seen) > LAST_SEEN_RESOLUTION):
            desired["lastSeen"] = to_iso(now.replace(microsecond=0))
        patch = changed(status, desired)
        if not patch:
            return
        try:
            await self.hub.merge_patch(member_cluster_path(member.metadata.name, "status"),
                                       {"status": patch})
        except KubeError as exc:
            log.info("MemberCluster %s status: %s", member.metadata.name, exc)
            return
        if status.get("ready") is not None and bool(status.get("ready")) != ready:
            self.recorder.record(body, "Ready" if ready else "Unreachable", message, warning=not ready)

    async def _flush(self, ctx: JobContext) -> None:
        patch = changed(ctx.status, ctx.patch)
        if patch:
            meta = ctx.body["metadata"]
            try:
                result = await self.hub.merge_patch(caj_path(meta["namespace"], meta["name"], "status"),
                                                    {"status": patch})
                first_decision = "decision" in patch and not ctx.status.get("decision")
                ctx.status = dict(result.get("status") or {}) if result else {**ctx.status, **patch}
                if result:
                    self.world.remember(result)
                seen = self.world.first_seen.pop(ctx.uid, None) if first_decision else None
                if first_decision and seen is not None:  # measured when it is written, not planned
                    self.metrics.decision_latency.observe(time.monotonic() - seen)
            except KubeError as exc:
                log.warning("status of %s: %s", ctx.key, exc)
                return
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

    def _update_job_metrics(self) -> None:
        if time.monotonic() - self._metrics_updated < METRICS_S:
            return  # walks every job held: not on every cycle
        self._metrics_updated = time.monotonic()
        phases = Counter((b.get("status") or {}).get("phase") or "Pending" for b in self.world.jobs.values())
        for phase in ("Pending", "Waiting", "Dispatched", "Running", "Suspended", "Succeeded", "Failed"):
            self.metrics.jobs.labels(phase=phase).set(phases.get(phase, 0))

    def _next_due(self, contexts: list[JobContext], now: datetime) -> datetime | None:
        due: list[datetime] = []
        for ctx in contexts:
            decision = ctx.current("decision") or {}
            if decision.get("start"):
                due.append(parse_iso(decision["start"]))
            for window in decision.get("slots") or []:
                due.extend((parse_iso(window["start"]), parse_iso(window["end"])))
        future = [d for d in due if d > now]
        return min(future) if future else None


def _in_window(decision: dict[str, Any], now: datetime) -> bool:
    return any(parse_iso(w["start"]) <= now < parse_iso(w["end"]) for w in decision.get("slots") or [])


def _summary(decision: dict[str, Any], plan: Plan) -> str:
    reasons = "; ".join(r["message"] for r in decision["reasons"][:2])
    return (f"{decision['region']} via {decision['cluster']} at {decision['start']}: expected "
            f"{decision['expectedGrams']:.0f} g vs {decision['baselineGrams']:.0f} g baseline. {reasons}")[:1024]

