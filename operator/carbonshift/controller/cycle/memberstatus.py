"""MemberCluster status: reachable or not, the latest signal, how many jobs run there.

Written as a merge patch of what changed only; ``lastSeen`` moves at most once a minute and
``runningJobs`` is recounted at most every MEMBER_COUNT_S, so a quiet cluster costs no write.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from carbonshift.api import ClusterPhase, JobPhase, MemberCluster, MemberConditionType, MemberReason
from carbonshift.controller.clock import Clock
from carbonshift.controller.kube import KubeApi, KubeError
from carbonshift.controller.manifests import job_progress
from carbonshift.controller.members import MemberRegistry
from carbonshift.controller.paths import member_cluster_path
from carbonshift.controller.recorder import EventRecorder
from carbonshift.controller.signalhub import RegionReading
from carbonshift.controller.status import changed, with_condition
from carbonshift.controller.world import World
from carbonshift.timefmt import parse_iso, to_iso

log = logging.getLogger(__name__)

LAST_SEEN_RESOLUTION = timedelta(minutes=1)  # a reachable member's lastSeen is refreshed this often
MEMBER_COUNT_S = 10.0  # a MemberCluster's runningJobs is recounted (and written) this often


class MemberStatus:
    def __init__(self, hub: KubeApi, world: World, registry: MemberRegistry, recorder: EventRecorder,
                 clock: Clock) -> None:
        self.hub = hub
        self.world = world
        self.registry = registry
        self.recorder = recorder
        self.clock = clock
        self._counted: dict[str, float] = {}  # member -> monotonic time runningJobs was counted

    def desired(self, member: MemberCluster, ready: bool, reading: RegionReading | None,
                jobs: dict[str, dict[str, Any]] | None, now: datetime) -> tuple[dict[str, Any], dict[str, Any], str]:
        """(current status, desired status, message) for ``member`` as observed this cycle."""
        body = self.world.members.get(str(member.metadata.name)) or {}
        status = body.get("status") or {}
        generation = body.get("metadata", {}).get("generation")
        health = self.registry.health(str(member.metadata.name))
        message = health.message if health else "not probed yet"
        desired: dict[str, Any] = {
            "phase": ClusterPhase.READY if ready else ClusterPhase.NOT_READY,
            "ready": ready,
            "message": message,
            "observedGeneration": generation,
            "conditions": with_condition(status.get("conditions") or [], MemberConditionType.READY, ready,
                                         MemberReason.REACHABLE if ready else MemberReason.UNREACHABLE, message, now,
                                         generation),
        }
        name = str(member.metadata.name)
        recently = self.clock.monotonic() - self._counted.get(name, float("-inf")) < MEMBER_COUNT_S
        if jobs is not None and not recently:  # a count that moves with every job: at most every 10 s
            self._counted[name] = self.clock.monotonic()
            desired["runningJobs"] = sum(1 for j in jobs.values() if job_progress(j) == JobPhase.RUNNING)
        if reading is not None:
            if reading.current_g_per_kwh is not None and reading.observed_at is not None:
                desired["signal"] = {"intensity": round(reading.current_g_per_kwh, 2),
                                     "observedAt": to_iso(reading.observed_at), "source": reading.source[:64]}
            stale = reading.error is not None
            seen = f"{reading.kind} from {reading.source}"  # and what the learned forecast policy made of it
            seen = f"{seen}; {reading.conditioning}" if reading.conditioning else seen
            desired["conditions"] = with_condition(desired["conditions"], MemberConditionType.SIGNALS_STALE, stale,
                                                   MemberReason.PROVIDER_ERROR if stale else MemberReason.FRESH,
                                                   reading.error or seen, now, generation)
        last_seen = status.get("lastSeen")
        if ready and (not last_seen or now - parse_iso(last_seen) > LAST_SEEN_RESOLUTION):
            desired["lastSeen"] = to_iso(now.replace(microsecond=0))
        return status, desired, message

    async def write(self, member: MemberCluster, ready: bool, reading: RegionReading | None,
                    jobs: dict[str, dict[str, Any]] | None, now: datetime) -> None:
        status, desired, message = self.desired(member, ready, reading, jobs, now)
        patch = changed(status, desired)
        if not patch:
            return
        try:
            await self.hub.merge_patch(member_cluster_path(str(member.metadata.name), "status"), {"status": patch})
        except KubeError as exc:
            log.info("MemberCluster %s status: %s", member.metadata.name, exc)
            return
        if status.get("ready") is not None and bool(status.get("ready")) != ready:
            body = self.world.members.get(str(member.metadata.name)) or {}
            self.recorder.record(body, MemberReason.READY if ready else MemberReason.UNREACHABLE, message,
                                 warning=not ready)
