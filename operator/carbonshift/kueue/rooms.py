"""The Kueue rooms' loop: read Kueue's objects on the hub, decide with the core, act.

Runs beside the CarbonAwareJob scheduler in the same process (started by controller/handlers.py
when the operator setting ``kueue.enabled`` is on) and shares its hub client, SignalHub, clock,
metrics and its view of MemberClusters and CarbonPolicies (the Kopf watches feed both).

Each cycle: mark carbonshift's AdmissionChecks Active; list Workloads; for each one with quota
reserved, (1) the green-window check: Pending until the plan's start, then Ready; (2) the
dispatcher: nominate a worker of the plan's region once every other check is Ready; (3)
relocation: interruptible work whose region became clearly greener elsewhere gets its check set
to Retry, which makes Kueue evict it and ask again; (4) accounting when it finished.
A watch on Workloads wakes the loop, so decisions follow Kueue within a fraction of a second.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from pydantic import ValidationError

from carbonshift.api import MemberCluster
from carbonshift.controller.clock import Clock
from carbonshift.controller.events import post_event
from carbonshift.controller.kube import KubeApi, KubeError
from carbonshift.controller.metrics import Metrics
from carbonshift.controller.settings import OperatorSettings
from carbonshift.controller.signalhub import RegionReading, SignalHub
from carbonshift.controller.validation import usable_members
from carbonshift.controller.world import World
from carbonshift.core import Plan
from carbonshift.kueue.admissioncheck import GreenWindowCheck
from carbonshift.kueue.dispatcher import (
    Dispatcher,
    Worker,
    pick_worker,
    regions_with_room,
)
from carbonshift.kueue.intent import Intent, read_intent
from carbonshift.kueue.planning import NO_ALLOWANCE, explain, plan_workload, reason_code
from carbonshift.kueue.workloads import (
    MULTIKUEUE_CONTROLLER,
    Workload,
    checks_by_controller,
    cluster_path,
    owner_path,
    parse_workload,
    workloads_path,
)

log = logging.getLogger(__name__)
ACCOUNTED = "carbonshift.io/accounted"
MEMBER_LABEL = "carbonshift.io/member"  # on a MultiKueueCluster whose name is not its MemberCluster's
OWNER_CACHE_S = 60.0


@dataclass
class _Decided:
    plan: Plan | None
    intent: Intent
    first_seen: float  # monotonic, for the decision latency
    decided: bool = False


@dataclass
class KueueRooms:
    hub: KubeApi
    signals: SignalHub
    clock: Clock
    settings: OperatorSettings
    metrics: Metrics
    world: World
    _plans: dict[str, _Decided] = field(default_factory=dict)  # workload uid -> its plan
    _owners: dict[str, tuple[float, dict[str, str]]] = field(default_factory=dict)  # uid -> (read at, annotations)
    _relocating: dict[str, str] = field(default_factory=dict)  # uid -> region it should move to
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    def __post_init__(self) -> None:
        config = self.settings.kueue
        self.check = GreenWindowCheck(self.hub, config.check_controller)
        self.dispatcher = Dispatcher(self.hub)

    # ----- loop --------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        watcher = asyncio.create_task(self._watch(stop))
        try:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    await self.cycle()
                except KubeError as exc:
                    log.warning("Kueue cycle: %s", exc)
                except Exception:  # one bad cycle must not end the rooms
                    log.exception("Kueue cycle failed")
                self.metrics.kueue_cycle_seconds.observe(time.monotonic() - started)
                self._wake.clear()
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(self._wake.wait())]
                await asyncio.wait(waiters, timeout=self.settings.kueue.period_seconds,
                                   return_when=asyncio.FIRST_COMPLETED)
                for waiter in waiters:
                    waiter.cancel()
        finally:
            watcher.cancel()

    async def _watch(self, stop: asyncio.Event) -> None:
        """Any Workload change wakes the loop (the loop itself re-lists, so missed events only delay)."""
        while not stop.is_set():
            try:
                async for _ in self.hub.watch(workloads_path(), {"timeoutSeconds": 300, "allowWatchBookmarks": False}):
                    self._wake.set()
            except KubeError as exc:
                log.debug("Workload watch: %s", exc)
            except asyncio.CancelledError:
                raise
            await asyncio.sleep(1.0)

    # ----- one cycle ---------------------------------------------------------------------
    async def cycle(self) -> None:
        now = self.clock.now()
        checks = (await self.hub.get(cluster_path("admissionchecks"))).get("items") or []
        await self.check.activate(checks)
        controllers = checks_by_controller(checks)
        ours = {name for name, c in controllers.items() if c == self.settings.kueue.check_controller}
        multikueue = {name for name, c in controllers.items() if c == MULTIKUEUE_CONTROLLER}
        members = self._members()
        workers = await self._workers(members) if multikueue else []
        body = await self.hub.get(workloads_path())
        workloads = [parse_workload(item) for item in body.get("items") or []]
        live = {w.uid for w in workloads}
        for uid in [u for u in self._plans if u not in live]:
            self._plans.pop(uid, None)
            self._owners.pop(uid, None)
            self._relocating.pop(uid, None)
        load: dict[str, int] = {}
        for wl in workloads:
            if wl.cluster_name and not wl.finished:
                load[wl.cluster_name] = load.get(wl.cluster_name, 0) + 1
        readings = await self._readings(members, now)
        counts = {"held": 0, "ready": 0, "dispatched": 0, "running": 0, "finished": 0}
        # Decisions are cheap; the API calls behind them are not: Workloads are handled side by side
        # (at most apiWorkers at once). Room on a worker is taken before the nomination is sent.
        gate = asyncio.Semaphore(self.settings.api_workers)

        async def one(wl: Workload) -> None:
            async with gate:
                try:
                    await self._one(wl, ours, multikueue, members, workers, readings, load, now, counts)
                except KubeError as exc:
                    log.info("Workload %s: %s", wl.key, exc)

        await asyncio.gather(*(one(wl) for wl in workloads))
        for state, count in counts.items():
            self.metrics.kueue_workloads.labels(state=state).set(count)

    def _members(self) -> dict[str, MemberCluster]:
        out = {}
        for name, body in self.world.members.items():
            try:
                out[str(name)] = MemberCluster.model_validate(body)
            except ValidationError:
                continue
        return out

    async def _workers(self, members: dict[str, MemberCluster]) -> list[Worker]:
        items = (await self.hub.get(cluster_path("multikueueclusters"))).get("items") or []
        workers = []
        for item in items:
            meta = item.get("metadata") or {}
            name = str(meta.get("name"))
            member = members.get((meta.get("labels") or {}).get(MEMBER_LABEL) or name)
            if member is None:
                continue  # a worker carbonshift has no region (no signals) for: never nominated
            active = any(c.get("type") == "Active" and c.get("status") == "True"
                         for c in (item.get("status") or {}).get("conditions") or [])
            workers.append(Worker(name, member.spec.region, active, member.spec.capacity.max_concurrent_jobs))
        return workers

    async def _readings(self, members: dict[str, MemberCluster], now: datetime) -> dict[str, RegionReading]:
        chosen: dict[str, MemberCluster] = {}
        for member in members.values():
            chosen.setdefault(member.spec.region, member)
        results = await asyncio.gather(*(self.signals.read(m, now) for m in chosen.values()), return_exceptions=True)
        readings = {}
        for member, result in zip(chosen.values(), results):
            if isinstance(result, RegionReading):
                readings[member.spec.region] = result
                if result.current_g_per_kwh is not None:
                    self.metrics.signal_intensity.labels(region=result.region).set(result.current_g_per_kwh)
        return readings

    async def _owner_annotations(self, wl: Workload) -> dict[str, str]:
        cached = self._owners.get(wl.uid)
        if cached is not None and time.monotonic() - cached[0] < OWNER_CACHE_S:
            return cached[1]
        notes: dict[str, str] = {}
        if wl.owner is not None:
            api_version, kind, name = wl.owner
            try:
                owner = await self.hub.get(owner_path(api_version, kind, wl.namespace, name))
                notes = {str(k): str(v) for k, v in ((owner.get("metadata") or {}).get("annotations") or {}).items()}
            except KubeError as exc:
                if not exc.not_found:
                    raise
        self._owners[wl.uid] = (time.monotonic(), notes)
        return notes

    def _regions(self, wl: Workload, intent: Intent, members: dict[str, MemberCluster], workers: list[Worker],
                 remote: bool) -> tuple[str, ...]:
        usable = {m.spec.region for m in usable_members(wl.namespace, list(members.values()))}
        if remote:
            candidates = usable & {w.region for w in workers}
        else:
            local = self.settings.kueue.local_region
            candidates = usable & {local} if local else set()
        if intent.regions is not None:
            candidates &= set(intent.regions)
        return tuple(sorted(candidates))

    async def _one(self, wl: Workload, ours: set[str], multikueue: set[str], members: dict[str, MemberCluster],
                   workers: list[Worker], readings: dict[str, RegionReading], load: dict[str, int], now: datetime,
                   counts: dict[str, int]) -> None:
        if wl.finished:
            counts["finished"] += 1
            await self._account(wl)
            return
        mine = [name for name in wl.checks if name in ours]
        remote_check = next((name for name in wl.checks if name in multikueue), None)
        if not mine and remote_check is None:
            return  # not a carbonshift Workload
        if wl.admitted:
            counts["running"] += 1
            if mine and wl.cluster_name:
                await self._maybe_relocate(wl, mine[0], members, workers, readings, load, now)
            return
        if not wl.quota_reserved or not wl.active:
            return  # Kueue's quota comes first: nothing is decided without a reservation
        policies = self.world.namespace_policies(wl.namespace)
        intent = read_intent(wl, await self._owner_annotations(wl), policies, self.settings.defaults,
                             self.settings.min_watts_per_cpu)
        decided = self._plans.get(wl.uid)
        if decided is None or decided.intent != intent:
            decided = _Decided(None, intent, time.monotonic())
            self._plans[wl.uid] = decided
        regions = self._regions(wl, intent, members, workers, remote_check is not None)
        if remote_check is not None:
            # Only regions with a worker that has room: a full region must not hold the plan.
            regions = tuple(r for r in regions if r in regions_with_room(workers, load))
        target = self._relocating.get(wl.uid)
        if target is not None and target in regions:
            regions = (target,)
        if decided.plan is None or (decided.plan.region is not None and decided.plan.region not in regions):
            submitted = self.clock.from_real(wl.created) if wl.created else now
            decided.plan = plan_workload(wl, intent, readings, regions, submitted, now) if regions else None
        plan = decided.plan
        all_ready = True
        for check in mine:
            state = wl.checks[check].state
            if state == "Ready":
                continue
            if state != "Pending":  # Retry/Rejected: Kueue acts on it first (eviction resets it to Pending)
                all_ready = False
                continue
            ready, message, event = self._check_decision(wl, intent, plan, regions, now)
            wrote = await self.check.set_state(wl, check, "Ready" if ready else "Pending", message, event=event,
                                               warning=bool(intent.problems))
            if wrote:
                self.metrics.kueue_decisions.labels(decision="ready" if ready else "held").inc()
                if not decided.decided:
                    decided.decided = True
                    self.metrics.decision_latency.observe(time.monotonic() - decided.first_seen)
            if not ready:
                counts["held"] += 1
                all_ready = False
        if remote_check is None or not all_ready:
            if all_ready:
                counts["ready"] += 1
            return
        other_pending = [n for n, c in wl.checks.items() if n not in mine and n != remote_check and c.state != "Ready"]
        if wl.cluster_name or wl.nominated or other_pending:
            return
        if plan is None or plan.region is None:
            await post_event(self.hub, wl.body_ref(), "CarbonNoWorker",
                             f"carbonshift found no ready worker with room in the allowed regions {list(regions)}",
                             warning=True)
            return
        worker = pick_worker(workers, plan.region, load)
        if worker is None:
            return
        load[worker.name] = load.get(worker.name, 0) + 1  # taken now: other Workloads are decided meanwhile
        why = f"greenest allowed region with room [{reason_code(plan)}]"
        if not await self.dispatcher.nominate(wl, worker, why):
            load[worker.name] -= 1
            return
        counts["dispatched"] += 1
        self._relocating.pop(wl.uid, None)
        self.metrics.kueue_decisions.labels(decision="dispatched").inc()
        self.metrics.dispatches.labels(cluster=worker.name).inc()
        await self._remember_plan(wl, plan)

    def _check_decision(self, wl: Workload, intent: Intent, plan: Plan | None, regions: tuple[str, ...],
                        now: datetime) -> tuple[bool, str, str | None]:
        """(Ready?, message, Event reason or None)."""
        notes = "".join(f" Ignored: {p}." for p in intent.problems) + (f" {intent.capped}." if intent.capped else "")
        if not intent.delays:
            why = "dryRun in " + intent.policy_source if intent.dry_run else \
                "no carbonshift.io/max-delay on the Workload's owner"
            return True, f"carbonshift: not delayed ({why}) [{NO_ALLOWANCE}].{notes}", "CarbonNotDelayed"
        if plan is None:
            return True, (f"carbonshift: no carbon signal for the allowed regions {list(regions)}: runs now "
                          f"[NoSignalFallback].{notes}"), "CarbonReady"
        if plan.start is None or plan.start <= now:
            return True, explain(plan, now) + notes, "CarbonReady"
        return False, explain(plan, now) + notes, "CarbonHeld"

    async def _maybe_relocate(self, wl: Workload, check: str, members: dict[str, MemberCluster],
                              workers: list[Worker], readings: dict[str, RegionReading], load: dict[str, int],
                              now: datetime) -> None:
        """Interruptible work running where another region is now clearly greener: Retry (evict, ask again)."""
        decided = self._plans.get(wl.uid)
        if decided is None or not decided.intent.interruptible or wl.uid in self._relocating:
            return
        here = next((w.region for w in workers if w.name == wl.cluster_name), None)
        if here is None:
            return
        intent = decided.intent
        regions = tuple(r for r in self._regions(wl, intent, members, workers, True)
                        if r == here or r in regions_with_room(workers, load))
        now_only = replace(intent, max_delay=timedelta(0))
        anywhere = plan_workload(wl, now_only, readings, regions, now, now)
        stay = plan_workload(wl, now_only, readings, (here,), now, now)
        if anywhere is None or stay is None or anywhere.region in (None, here):
            return
        threshold = 1.0 - max(self.settings.replan_min_improvement, 0.2)  # "clearly" greener: 20% at least
        if not anywhere.expected_g < stay.expected_g * threshold:
            return
        message = (f"carbonshift: relocating from {here} to {anywhere.region}: "
                   f"{anywhere.expected_g:.0f} g instead of {stay.expected_g:.0f} g for the rest of the run")
        if await self.check.set_state(wl, check, "Retry", message, event="CarbonRelocating"):
            self._relocating[wl.uid] = str(anywhere.region)
            self._plans.pop(wl.uid, None)
            self.metrics.kueue_decisions.labels(decision="relocated").inc()

    async def _remember_plan(self, wl: Workload, plan: Plan) -> None:
        """Expected and baseline grams on the Workload, so the accounting survives a restart."""
        patch = {"metadata": {"annotations": {"carbonshift.io/expected-grams": f"{plan.expected_g:.3f}",
                                              "carbonshift.io/baseline-grams": f"{plan.baseline_g:.3f}",
                                              "carbonshift.io/region": str(plan.region)}}}
        try:
            await self.hub.merge_patch(workloads_path(wl.namespace, wl.name), patch)
        except KubeError as exc:
            log.info("annotating %s: %s", wl.key, exc)

    async def _account(self, wl: Workload) -> None:
        """Emitted and saved grams, once per finished Workload (the annotation makes it once)."""
        notes = wl.annotations
        if notes.get(ACCOUNTED) or "carbonshift.io/expected-grams" not in notes:
            return
        try:
            expected = float(notes["carbonshift.io/expected-grams"])
            baseline = float(notes.get("carbonshift.io/baseline-grams", "nan"))
        except ValueError:
            return
        region = notes.get("carbonshift.io/region", "unknown")
        try:
            await self.hub.merge_patch(workloads_path(wl.namespace, wl.name),
                                       {"metadata": {"resourceVersion": wl.resource_version,
                                                     "annotations": {ACCOUNTED: "true"}}})
        except KubeError:
            return  # counted by whoever wrote it first
        if math.isfinite(expected) and expected >= 0:
            self.metrics.emitted.labels(region=region).inc(expected)
            # The baseline counter too, so that baseline - emitted is the net saving (an unknown baseline saves 0).
            known = math.isfinite(baseline) and baseline >= 0
            self.metrics.baseline.labels(region=region).inc(baseline if known else expected)
            if math.isfinite(baseline) and baseline > expected:
                self.metrics.saved.labels(region=region).inc(baseline - expected)
