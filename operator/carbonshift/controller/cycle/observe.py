"""Step 1 of a cycle: observe. Member clusters are probed, each reachable region's signals read
and the Jobs this hub made in each member taken from their watched views, into one ``CycleView``.
Each MemberCluster's status says what was observed (``memberstatus``)."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic import ValidationError

from carbonshift.api import MemberCluster
from carbonshift.controller.clock import Clock
from carbonshift.controller.cycle.context import CycleView
from carbonshift.controller.cycle.memberstatus import MemberStatus
from carbonshift.controller.memberjobs import MemberJobs
from carbonshift.controller.members import MemberRegistry
from carbonshift.controller.metrics import Metrics
from carbonshift.controller.signalhub import SignalHub
from carbonshift.controller.world import World

log = logging.getLogger(__name__)

SYNC_WAIT_S = 5.0  # how long a cycle waits for a member's first list of Jobs


class Observer:
    def __init__(self, world: World, registry: MemberRegistry, signals: SignalHub, member_jobs: MemberJobs,
                 member_status: MemberStatus, clock: Clock, metrics: Metrics) -> None:
        self.world = world
        self.registry = registry
        self.signals = signals
        self.member_jobs = member_jobs
        self.member_status = member_status
        self.clock = clock
        self.metrics = metrics

    async def observe(self) -> CycleView:
        # Whole seconds: the planning grid starts exactly at "now", so "run now" is slot 0.
        now = self.clock.now().replace(microsecond=0)
        members = self._members()
        healths = await asyncio.gather(*(self.registry.probe(m) for m in members.values()))
        healthy = {n: m for (n, m), h in zip(members.items(), healths) if h.ready}
        for name, health in zip(members, healths):
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
        await self.member_jobs.keep_only(set(members))
        member_jobs: dict[str, dict[str, dict[str, Any]]] = {}
        await asyncio.gather(*(self._list_jobs(m, healthy, member_jobs) for m in list(healthy.values())))
        await asyncio.gather(*(self.member_status.write(m, m.metadata.name in healthy, readings.get(m.spec.region),
                                                        member_jobs.get(str(m.metadata.name)), now)
                               for m in members.values()))
        return CycleView(now, members, healthy, region_member, readings, member_jobs)

    def _members(self) -> dict[str, MemberCluster]:
        members: dict[str, MemberCluster] = {}
        for name, body in sorted(self.world.members.items()):
            try:
                members[name] = MemberCluster.model_validate(body)
            except ValidationError as exc:
                log.warning("MemberCluster %s is not usable: %s", name, exc)
        return members

    async def _list_jobs(self, member: MemberCluster, healthy: dict[str, MemberCluster],
                         out: dict[str, dict[str, dict[str, Any]]]) -> None:
        name = str(member.metadata.name)
        cache = self.member_jobs.cache(member)
        if not cache.synced.is_set():
            try:
                await asyncio.wait_for(cache.synced.wait(), timeout=SYNC_WAIT_S)
            except TimeoutError:
                self.registry.mark_unreachable(name, cache.error or f"{name}: its Jobs could not be listed yet")
                healthy.pop(name, None)
                return
        out[name] = dict(cache.jobs)  # a snapshot: the watch goes on changing the cache
