"""Which member Jobs the operator takes as its own copy of a job, without a server.

A copy is adopted only when it is provably this hub's: it carries this hub's label (made by this
version), or the hub's status records it by its member UID (made by a version before the hub
label). A look-alike someone else made (same name, same labels, no record) is never adopted,
patched or deleted. A copy left in another cluster than the new decision after a restart is
adopted there, and a create whose answer was lost is not repeated elsewhere while the cluster it
went to cannot be looked at: never two copies.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import timedelta
from typing import Any

import pytest
from controller_fakes import FakeRegistry
from controller_rig import HUB_ID, NAMESPACE, Rig, job_body

from carbonshift.controller.cycle import Scheduler
from carbonshift.controller.manifests import FINALIZER_RECORD, LABEL_HUB, build_member_job
from carbonshift.controller.paths import caj_path, job_path

OLD_NAMESPACE = "carbonshift-jobs"  # the shared jobNamespace of versions before the hub label


def creates(rig: Rig, member: str) -> int:
    """Job creations (not dry runs) the operator sent to ``member``."""
    return len(rig.apis[member].writes("POST", "/jobs"))


def touched(rig: Rig, member: str, job: dict[str, Any]) -> list[str]:
    """Writes the operator sent to that very Job (patches, deletes)."""
    path = job_path(job["metadata"]["namespace"], job["metadata"]["name"])
    return [c.method for c in rig.apis[member].writes() if c.path == path]


def unlabelled_copy(rig: Rig, member: str, name: str, namespace: str = OLD_NAMESPACE) -> dict[str, Any]:
    """A member Job as versions before the hub label made it (commit 769b937 added the label and
    the finalizer): the same name and carbonshift labels and annotations, no hub label, no
    finalizer. Anyone who may create Jobs in ``namespace`` can make one just like it."""
    manifest = build_member_job(rig.job(name), namespace=namespace, member=member,
                                region=rig.world.members[member]["spec"]["region"], hub_id="-")
    del manifest["metadata"]["labels"][LABEL_HUB]
    del manifest["metadata"]["finalizers"]
    return rig.apis[member].put(job_path(namespace, manifest["metadata"]["name"]), manifest)


def set_status(rig: Rig, name: str, **values: Any) -> None:
    """The job's status as an earlier operator left it on the hub."""
    body = copy.deepcopy(rig.job(name))
    body["status"] = {**(body.get("status") or {}), **values}
    rig.world.put_job(rig.hub.put(caj_path(NAMESPACE, name), body))


async def restart(rig: Rig) -> None:
    """A new operator process: empty memory, the same servers."""
    await rig.close()
    rig.registry = FakeRegistry(rig.hub, rig.apis)
    rig.scheduler = Scheduler(rig.hub, rig.registry, rig.signals, rig.clock,  # type: ignore[arg-type]
                              rig.settings, rig.metrics, rig.world)


async def upgraded_with_an_old_copy(rig: Rig, name: str, *, recorded_uid: str | None) -> dict[str, Any]:
    """A job dispatched by a version before the hub label: its copy in the old shared namespace
    (unlabelled) and its status naming that copy (with ``recorded_uid`` as its member UID; None:
    the copy's own UID). Then the operator is upgraded (restarted)."""
    await rig.cycle()
    dispatched = rig.member_job("eu-de", name)
    assert dispatched is not None
    rig.apis["eu-de"].remove(job_path(dispatched["metadata"]["namespace"], dispatched["metadata"]["name"]))
    old = unlabelled_copy(rig, "eu-de", name)
    meta = old["metadata"]
    set_status(rig, name, memberJob={"cluster": "eu-de", "namespace": meta["namespace"], "name": meta["name"],
                                     "uid": recorded_uid or meta["uid"]})
    await restart(rig)
    return old


def test_a_copy_made_before_the_hub_label_is_adopted_when_the_status_records_it() -> None:
    async def scenario() -> None:
        rig = Rig(members={"eu-de": "eu-de"})
        rig.add_job(job_body("kept", regions=["eu-de"]))
        old = await upgraded_with_an_old_copy(rig, "kept", recorded_uid=None)
        await rig.cycle()
        await rig.cycle(advance=timedelta(seconds=40))
        path = job_path(OLD_NAMESPACE, old["metadata"]["name"])
        adopted = rig.apis["eu-de"].objects[path]
        assert adopted["metadata"]["labels"][LABEL_HUB] == HUB_ID
        assert adopted["metadata"]["finalizers"] == [FINALIZER_RECORD]
        assert creates(rig, "eu-de") == 1 and len(rig.apis["eu-de"].jobs()) == 1  # only the first dispatch
        status = rig.status("kept")
        assert status["phase"] == "Dispatched" and status["memberJob"]["uid"] == old["metadata"]["uid"]
        # It is followed to its end like any copy, and let go once the end is recorded.
        rig.finish_member_job("eu-de", "kept")
        await rig.cycle(advance=timedelta(seconds=40))
        assert rig.status("kept")["phase"] == "Succeeded"
        assert FINALIZER_RECORD not in (rig.apis["eu-de"].objects[path]["metadata"].get("finalizers") or [])
        await rig.close()

    asyncio.run(scenario())


def test_a_look_alike_at_the_recorded_place_is_not_adopted() -> None:
    async def scenario() -> None:
        rig = Rig(members={"eu-de": "eu-de"})
        rig.add_job(job_body("replaced", regions=["eu-de"]))
        # The recorded copy is gone (no finalizer then: its TTL removed it); a Job of the same
        # name, labels and annotations stands in its place, made by someone else.
        look_alike = await upgraded_with_an_old_copy(rig, "replaced", recorded_uid="uid-of-the-copy-that-is-gone")
        await rig.cycle()
        await rig.cycle(advance=timedelta(seconds=40))
        status = rig.status("replaced")
        assert status["phase"] == "Failed"
        assert rig.condition("replaced", "Failed")["reason"] == "MemberJobLost"
        assert touched(rig, "eu-de", look_alike) == []  # never labelled, patched or deleted
        left = rig.apis["eu-de"].objects[job_path(OLD_NAMESPACE, look_alike["metadata"]["name"])]
        assert LABEL_HUB not in left["metadata"]["labels"] and not left["metadata"].get("finalizers")
        assert creates(rig, "eu-de") == 1  # not run again either
        await rig.close()

    asyncio.run(scenario())


def test_an_unrecorded_copy_without_the_hub_label_is_neither_adopted_nor_doubled() -> None:
    async def scenario() -> None:
        rig = Rig(members={"eu-de": "eu-de"})
        rig.add_job(job_body("squatted", regions=["eu-de"]))
        # In the job's own member namespace, with the deterministic name: a tenant's look-alike,
        # or a copy an old version made just before it was killed (nothing tells them apart).
        found = unlabelled_copy(rig, "eu-de", "squatted", namespace=NAMESPACE)
        await rig.cycle()
        await rig.cycle(advance=timedelta(seconds=40))
        status = rig.status("squatted")
        assert status["phase"] == "Waiting" and "memberJob" not in status
        dispatched = rig.condition("squatted", "Dispatched")
        assert (dispatched["status"], dispatched["reason"]) == ("False", "DispatchFailed")
        assert "belongs to something else" in dispatched["message"]
        assert touched(rig, "eu-de", found) == [] and len(rig.apis["eu-de"].jobs()) == 1
        await rig.close()

    asyncio.run(scenario())


def test_a_copy_left_in_another_cluster_than_the_new_decision_is_adopted_there() -> None:
    async def scenario() -> None:
        rig = Rig()
        rig.add_job(job_body("moved", regions=["eu-de", "eu-gb"]))
        # Decided for eu-de and created there; killed before the status write. Restarted, the
        # signals now favour eu-gb.
        left = rig.existing_member_job("eu-de", "moved")
        rig.signals.intensity = {"eu-de": [400.0] * 96, "eu-gb": [50.0] * 96}
        await rig.cycle()
        await rig.cycle(advance=timedelta(seconds=40))
        status = rig.status("moved")
        assert status["memberJob"]["cluster"] == "eu-de" and status["decision"]["cluster"] == "eu-de"
        assert status["memberJob"]["uid"] == left["metadata"]["uid"]
        assert creates(rig, "eu-gb") == 0 and rig.apis["eu-gb"].jobs() == []
        assert touched(rig, "eu-de", left) == []
        await rig.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("restarted", [False, True], ids=["same-process", "after-a-restart"])
def test_a_create_whose_answer_was_lost_is_not_repeated_elsewhere(restarted: bool) -> None:
    async def scenario() -> None:
        rig = Rig()
        rig.signals.intensity = {"eu-de": [100.0] * 96, "eu-gb": [400.0] * 96}
        rig.add_job(job_body("unsure", regions=["eu-de", "eu-gb"]))
        rig.apis["eu-de"].lose_answer("POST", "/jobs")  # the Job is made; the answer never comes
        await rig.cycle()
        made = rig.member_job("eu-de", "unsure")
        assert made is not None and "memberJob" not in rig.status("unsure")
        rig.apis["eu-de"].reachable = False  # and eu-de stays out of reach for a while
        if restarted:
            await restart(rig)
        for _ in range(3):
            await rig.cycle(advance=timedelta(seconds=40))
            status = rig.status("unsure")
            assert creates(rig, "eu-gb") == 0 and rig.apis["eu-gb"].jobs() == [], status
            assert status["phase"] == "Waiting" and status["decision"]["cluster"] == "eu-de"
        dispatched = rig.condition("unsure", "Dispatched")
        assert (dispatched["status"], dispatched["reason"]) == ("False", "DispatchUnconfirmed")
        assert "eu-de" in status["message"] and "not created elsewhere" in status["message"]
        # eu-de answers again: the copy there is the run.
        rig.apis["eu-de"].reachable = True
        await rig.cycle(advance=timedelta(seconds=40))
        await rig.cycle(advance=timedelta(seconds=40))
        status = rig.status("unsure")
        assert status["phase"] == "Dispatched" and status["memberJob"]["uid"] == made["metadata"]["uid"]
        assert len(rig.apis["eu-de"].jobs()) == 1 and rig.apis["eu-gb"].jobs() == []
        await rig.close()

    asyncio.run(scenario())


def test_a_create_refused_before_it_was_sent_still_goes_elsewhere() -> None:
    async def scenario() -> None:
        rig = Rig()
        rig.signals.intensity = {"eu-de": [100.0] * 96, "eu-gb": [400.0] * 96}
        rig.add_job(job_body("failover", regions=["eu-de", "eu-gb"]))
        rig.apis["eu-de"].fail("POST", "/jobs", 0, times=3)  # the dry run finds eu-de unreachable: nothing made
        await rig.cycle()
        rig.apis["eu-de"].reachable = False
        await rig.cycle(advance=timedelta(seconds=40))
        await rig.cycle(advance=timedelta(seconds=40))
        status = rig.status("failover")
        assert status["memberJob"]["cluster"] == "eu-gb" and rig.apis["eu-de"].jobs() == []
        await rig.close()

    asyncio.run(scenario())


def test_a_labelled_look_alike_in_another_namespace_is_neither_adopted_nor_followed() -> None:
    async def scenario() -> None:
        rig = Rig(members={"eu-de": "eu-de"})
        rig.add_job(job_body("target", regions=["eu-de"]))
        # Someone with rights in another member namespace copies every label of the job's copy,
        # this hub's included (it is on every member Job), before the job is dispatched.
        forged = build_member_job(rig.job("target"), namespace="team-b", member="eu-de", region="eu-de", hub_id=HUB_ID)
        del forged["metadata"]["finalizers"]
        path = job_path("team-b", forged["metadata"]["name"])
        look_alike = rig.apis["eu-de"].put(path, forged)
        await rig.cycle()
        status = rig.status("target")
        assert status["phase"] == "Dispatched" and status["memberJob"]["namespace"] == NAMESPACE
        assert creates(rig, "eu-de") == 1
        # It changes again (its watch event now stands for the job in the operator's view) and ends.
        finished = copy.deepcopy(rig.apis["eu-de"].objects[path])
        finished["status"] = {"conditions": [{"type": "Failed", "status": "True"}], "failed": 1}
        rig.apis["eu-de"].put(path, finished)
        await rig.cycle(advance=timedelta(seconds=40))
        assert rig.status("target")["phase"] == "Dispatched"  # the real copy has not ended
        rig.finish_member_job("eu-de", "target")  # the job's own copy (team-a sorts first)
        await rig.cycle(advance=timedelta(seconds=40))
        await rig.cycle(advance=timedelta(seconds=40))
        assert rig.status("target")["phase"] == "Succeeded"
        assert touched(rig, "eu-de", look_alike) == [] and path in rig.apis["eu-de"].objects
        await rig.close()

    asyncio.run(scenario())
