"""A Scheduler wired to fakes: a hub and member API servers in memory, fixed signals, a fixed clock.

``Rig.cycle()`` runs one scheduling cycle and waits for the writes it started, so a test reads
what a user would see afterwards: the CarbonAwareJob's status on the hub, the Events posted,
the Jobs in each member and every call the operator made.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from controller_fakes import T0, FakeApi, FakeRegistry, FakeSignals

from carbonshift.api.common import API_VERSION
from carbonshift.controller.clock import FixedClock
from carbonshift.controller.cycle import Scheduler
from carbonshift.controller.manifests import LABEL_JOB_UID, build_member_job
from carbonshift.controller.metrics import Metrics
from carbonshift.controller.paths import caj_path, job_path, member_cluster_path
from carbonshift.controller.settings import OperatorSettings
from carbonshift.controller.world import World

HUB_ID = "hub-1"
NAMESPACE = "team-a"
RESTRICTED_POD: dict[str, Any] = {
    "restartPolicy": "Never",
    "securityContext": {"runAsNonRoot": True, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
    "containers": [{"name": "main", "image": "busybox", "command": ["true"],
                    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}],
}


def member_body(name: str, region: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API_VERSION, "kind": "MemberCluster",
            "metadata": {"name": name, "uid": f"uid-{name}", "generation": 1},
            "spec": {"region": region, "zone": "DE", "carbonSignal": {"provider": "trace", "trace": {"path": "DE"}},
                     **spec}}


def job_body(name: str, *, regions: list[str], max_delay: str | None = "6h", deadline: str | None = None,
             duration: str = "1h", interruptible: bool = False, relocation: bool = False, watts: float = 500,
             policy: str | None = None, preferred: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "estimatedDuration": duration, "power": {"watts": watts}, "interruptible": interruptible,
        "placement": {"allowedRegions": regions, "allowRelocation": relocation,
                      **({"preferredRegion": preferred} if preferred else {})},
        "template": {"spec": {"backoffLimit": 0, "template": {"spec": copy.deepcopy(RESTRICTED_POD)}}},
    }
    if deadline:
        spec["deadline"] = deadline
    else:
        spec["maxDelay"] = max_delay
    if policy:
        spec["policy"] = policy
    return {"apiVersion": API_VERSION, "kind": "CarbonAwareJob",
            "metadata": {"name": name, "namespace": NAMESPACE, "creationTimestamp": "2022-06-01T00:00:00Z"},
            "spec": spec}


class Rig:
    def __init__(self, members: dict[str, str] | None = None,
                 signals: Callable[[FixedClock, OperatorSettings], Any] | None = None, **settings: Any) -> None:
        """``signals`` builds the scheduler's signals from the clock and settings (a real ``SignalHub``
        over fake providers); default: ``FakeSignals``, fixed intensities."""
        members = members if members is not None else {"eu-de": "eu-de", "eu-gb": "eu-gb"}
        self.clock = FixedClock(T0)
        self.hub = FakeApi("hub")
        self.apis = {name: FakeApi(name) for name in members}
        self.world = World()
        self.metrics = Metrics()
        self.settings = OperatorSettings.model_validate({"hubId": HUB_ID, "memberProbeSeconds": 1, **settings})
        self.signals = FakeSignals() if signals is None else signals(self.clock, self.settings)
        self.registry = FakeRegistry(self.hub, self.apis)
        self.scheduler = Scheduler(self.hub, self.registry, self.signals, self.clock,  # type: ignore[arg-type]
                                   self.settings, self.metrics, self.world)
        for name, region in members.items():
            self.add_member(member_body(name, region))

    # ----- objects on the hub ----------------------------------------------------------------
    def add_member(self, body: dict[str, Any]) -> None:
        stored = self.hub.put(member_cluster_path(body["metadata"]["name"]), body)
        self.world.members[stored["metadata"]["name"]] = stored

    def add_policy(self, name: str, **spec: Any) -> None:
        body = {"apiVersion": API_VERSION, "kind": "CarbonPolicy",
                "metadata": {"name": name, "namespace": NAMESPACE, "uid": f"uid-policy-{name}", "generation": 1},
                "spec": spec}
        self.world.policies[(NAMESPACE, name)] = body

    def add_job(self, body: dict[str, Any]) -> dict[str, Any]:
        stored = self.hub.put(caj_path(NAMESPACE, body["metadata"]["name"]), body)
        self.world.put_job(stored)
        return stored

    def job(self, name: str) -> dict[str, Any]:
        return self.hub.objects[caj_path(NAMESPACE, name)]

    def status(self, name: str) -> dict[str, Any]:
        return dict(self.job(name).get("status") or {})

    def condition(self, name: str, type_: str) -> dict[str, Any]:
        return next((c for c in self.status(name).get("conditions") or [] if c["type"] == type_), {})

    def events(self, name: str) -> list[tuple[str, str]]:
        """(reason, message) of the Events posted about job ``name``, oldest first."""
        return [(c.body["reason"], c.body["message"]) for c in self.hub.writes("POST", "/events")
                if c.body["involvedObject"]["name"] == name]

    def member_job(self, member: str, name: str) -> dict[str, Any] | None:
        uid = self.job(name)["metadata"]["uid"]
        found = [j for j in self.apis[member].jobs() if j["metadata"]["labels"].get(LABEL_JOB_UID) == uid]
        return found[0] if found else None

    def existing_member_job(self, member: str, name: str, *, hub_id: str = HUB_ID,
                            unseen: bool = False) -> dict[str, Any]:
        """A member Job as a previous run of an operator (``hub_id``) left it for job ``name``."""
        manifest = build_member_job(self.job(name), namespace=NAMESPACE, member=member,
                                    region=self.world.members[member]["spec"]["region"], hub_id=hub_id)
        return self.apis[member].put(job_path(NAMESPACE, manifest["metadata"]["name"]), manifest, unseen=unseen)

    def finish_member_job(self, member: str, name: str, condition: str = "Complete") -> None:
        """The member's Job controller marks it finished (as the watch shows it)."""
        job = self.member_job(member, name)
        assert job is not None
        path = job_path(job["metadata"]["namespace"], job["metadata"]["name"])
        done = copy.deepcopy(self.apis[member].objects[path])
        done["status"] = {"conditions": [{"type": condition, "status": "True"}], "succeeded": 1,
                          "startTime": "2022-06-01T00:00:00Z", "completionTime": "2022-06-01T01:00:00Z"}
        self.apis[member].put(path, done)

    # ----- running the operator --------------------------------------------------------------
    async def cycle(self, advance: timedelta | None = None) -> None:
        if advance:
            self.clock.advance(advance)
        await self.scheduler.cycle()
        await self.scheduler.settle()
        await asyncio.sleep(0)  # watch events of the writes reach the member caches
        await self.scheduler.recorder.aclose()

    async def close(self) -> None:
        await self.scheduler.close()

