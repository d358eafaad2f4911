"""The write-ahead intent of a dispatch, without a server: before a member Job is created, the
hub's status says where a copy may appear (the decision naming the cluster, ``Dispatched=False``
reason ``Dispatching``), so an operator killed right after the create, and restarted while that
cluster cannot be listed, neither forgets the copy nor makes a second one elsewhere.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from controller_fakes import Call, FakeRegistry
from controller_rig import NAMESPACE, Rig, job_body

from carbonshift.controller.cycle import Scheduler
from carbonshift.controller.paths import caj_path, job_path, member_cluster_path


def creates(rig: Rig, member: str) -> list[Call]:
    """Job creations (not dry runs) the operator sent to ``member``."""
    return rig.apis[member].writes("POST", "/jobs")


def status_writes(rig: Rig, name: str) -> list[Call]:
    return rig.hub.writes("PATCH", caj_path(NAMESPACE, name, "status"))


def dispatched_reason(call: Call) -> str | None:
    conditions = (call.body.get("status") or {}).get("conditions") or []
    return next((c["reason"] for c in conditions if c["type"] == "Dispatched"), None)


async def restart(rig: Rig) -> None:
    """A new operator process: empty memory, the same servers."""
    await rig.close()
    rig.registry = FakeRegistry(rig.hub, rig.apis)
    rig.scheduler = Scheduler(rig.hub, rig.registry, rig.signals, rig.clock,  # type: ignore[arg-type]
                              rig.settings, rig.metrics, rig.world)


async def killed_after_create(rig: Rig, member: str) -> None:
    """One cycle whose create in ``member`` is answered, after which the hub stops answering (the
    status write that would record the copy fails), then a restart: the operator was killed
    between the create and the status write."""
    released = rig.apis[member].hold("POST", "/jobs")
    cycle = asyncio.ensure_future(rig.cycle())
    for _ in range(1000):
        if creates(rig, member):
            break
        await asyncio.sleep(0)
    assert creates(rig, member), "the create was never sent"
    rig.hub.reachable = False
    released.set()
    await cycle
    await restart(rig)
    rig.hub.reachable = True


def twice_rig(**members: str) -> Rig:
    rig = Rig(members={"eu-de": "eu-de", "eu-gb": "eu-gb", **members})
    rig.signals.intensity = {"eu-de": [100.0] * 96, "eu-gb": [400.0] * 96}  # eu-de first
    rig.add_job(job_body("once", regions=["eu-de", "eu-gb"]))
    return rig


def test_the_intent_is_in_status_before_the_create_is_sent() -> None:
    async def scenario() -> None:
        rig = twice_rig()
        await rig.cycle()
        create = creates(rig, "eu-de")
        assert len(create) == 1
        intent = [c for c in status_writes(rig, "once") if c.seq < create[0].seq]
        assert [dispatched_reason(c) for c in intent] == ["Dispatching"]
        written = intent[0].body["status"]
        assert written["decision"]["cluster"] == "eu-de" and "memberJob" not in written
        message = next(c["message"] for c in written["conditions"] if c["type"] == "Dispatched")
        name = create[0].body["metadata"]["name"]
        assert message == f"creating Job {NAMESPACE}/{name} in cluster eu-de"
        # The normal write that follows replaces it: Dispatched=True, one Dispatched Event.
        status = rig.status("once")
        assert status["phase"] == "Dispatched" and status["memberJob"]["cluster"] == "eu-de"
        assert (rig.condition("once", "Dispatched")["status"], rig.condition("once", "Dispatched")["reason"]) \
            == ("True", "Dispatched")
        assert [r for r, _ in rig.events("once")] == ["Dispatched"]
        await rig.close()

    asyncio.run(scenario())


def test_no_create_is_sent_when_the_intent_cannot_be_written() -> None:
    async def scenario() -> None:
        rig = twice_rig()
        rig.hub.fail("PATCH", caj_path(NAMESPACE, "once", "status"), 409)  # a conflict, once
        await rig.cycle()
        assert creates(rig, "eu-de") == [] and creates(rig, "eu-gb") == []
        assert "memberJob" not in rig.status("once")
        assert rig.condition("once", "Dispatched").get("reason") != "Dispatching"  # nothing was sent
        rig.hub.reachable = False  # the hub down: still nothing sent
        await rig.cycle(advance=timedelta(seconds=40))
        assert creates(rig, "eu-de") == [] and creates(rig, "eu-gb") == []
        rig.hub.reachable = True  # the next cycle dispatches it
        await rig.cycle(advance=timedelta(seconds=40))
        assert len(creates(rig, "eu-de")) == 1 and rig.status("once")["phase"] == "Dispatched"
        await rig.close()

    asyncio.run(scenario())


async def restarted_with_eu_de_unlisted(rig: Rig) -> dict[str, Any]:
    """Killed after the create in eu-de; restarted while eu-de is out of reach and eu-gb greener.
    Returns the copy eu-de holds."""
    await killed_after_create(rig, "eu-de")
    made = rig.member_job("eu-de", "once")
    assert made is not None
    assert "memberJob" not in rig.status("once")
    rig.apis["eu-de"].reachable = False
    rig.signals.intensity = {"eu-de": [400.0] * 96, "eu-gb": [50.0] * 96}
    for _ in range(3):
        await rig.cycle(advance=timedelta(seconds=40))
        assert creates(rig, "eu-gb") == [] and rig.apis["eu-gb"].jobs() == [], "created a second time, in eu-gb"
    return made


def test_after_a_restart_the_job_is_not_created_elsewhere_while_its_cluster_cannot_be_listed() -> None:
    async def scenario() -> None:
        rig = twice_rig()
        await restarted_with_eu_de_unlisted(rig)
        status = rig.status("once")
        assert status["phase"] == "Waiting" and status["decision"]["cluster"] == "eu-de"
        dispatched = rig.condition("once", "Dispatched")
        assert (dispatched["status"], dispatched["reason"]) == ("False", "DispatchUnconfirmed")
        assert "eu-de" in status["message"] and "not created elsewhere" in status["message"]
        warnings = [r for r, _ in rig.events("once") if r == "DispatchUnconfirmed"]
        assert warnings == ["DispatchUnconfirmed"]  # one Event for the new state, not one per cycle
        await rig.close()

    asyncio.run(scenario())


def test_once_the_cluster_is_listed_the_copy_there_is_adopted() -> None:
    async def scenario() -> None:
        rig = twice_rig()
        made = await restarted_with_eu_de_unlisted(rig)
        rig.apis["eu-de"].reachable = True
        await rig.cycle(advance=timedelta(seconds=40))
        await rig.cycle(advance=timedelta(seconds=40))
        status = rig.status("once")
        assert status["phase"] == "Dispatched" and status["memberJob"]["uid"] == made["metadata"]["uid"]
        assert len(creates(rig, "eu-de")) == 1 and creates(rig, "eu-gb") == []  # exactly one create in all
        assert rig.condition("once", "Dispatched")["status"] == "True"
        await rig.close()

    asyncio.run(scenario())


def test_once_the_cluster_is_listed_without_a_copy_the_job_is_created() -> None:
    async def scenario() -> None:
        rig = twice_rig()
        made = await restarted_with_eu_de_unlisted(rig)
        # The create never made the Job after all (here: it is gone before anyone looked).
        rig.apis["eu-de"].remove(job_path(made["metadata"]["namespace"], made["metadata"]["name"]))
        rig.apis["eu-de"].reachable = True
        await rig.cycle(advance=timedelta(seconds=40))
        await rig.cycle(advance=timedelta(seconds=40))
        status = rig.status("once")
        assert status["phase"] == "Dispatched"
        copies = rig.apis["eu-de"].jobs() + rig.apis["eu-gb"].jobs()
        assert len(copies) == 1 and status["memberJob"]["uid"] == copies[0]["metadata"]["uid"]
        assert status["memberJob"]["cluster"] == status["decision"]["cluster"]
        await rig.close()

    asyncio.run(scenario())


def test_a_deleted_member_cluster_does_not_hold_the_job_forever_and_the_status_says_so() -> None:
    async def scenario() -> None:
        rig = twice_rig(**{"eu-de-b": "eu-de"})  # (eu-de stays served: the job remains valid)
        await restarted_with_eu_de_unlisted(rig)
        # The admin removes MemberCluster eu-de: it cannot be looked at any more.
        rig.hub.remove(member_cluster_path("eu-de"))
        del rig.world.members["eu-de"]
        await rig.cycle(advance=timedelta(seconds=40))
        await rig.cycle(advance=timedelta(seconds=40))
        status = rig.status("once")
        assert status["phase"] == "Dispatched" and status["memberJob"]["cluster"] == "eu-gb"
        said = [m for r, m in rig.events("once") if r == "DispatchUnconfirmed" and "is deleted" in m]
        assert len(said) == 1 and "MemberCluster eu-de" in said[0], rig.events("once")
        await rig.close()

    asyncio.run(scenario())


def test_the_per_cycle_dispatch_budget_still_holds() -> None:
    async def scenario() -> None:
        rig = Rig(maxDispatchPerCycle=2)
        for i in range(5):
            rig.add_job(job_body(f"b-{i}", regions=["eu-de"]))
        await rig.cycle()
        assert len(creates(rig, "eu-de")) == 2
        intents = [c for c in rig.hub.writes("PATCH", "/status") if dispatched_reason(c) == "Dispatching"]
        assert len(intents) == 2  # no intent for the jobs left to the next cycles
        await rig.cycle(advance=timedelta(seconds=1))
        assert len(creates(rig, "eu-de")) == 4
        await rig.close()

    asyncio.run(scenario())

