"""Carrying decisions out in member clusters, without a server: adoption after a restart, Jobs
of another hub, conflicts, 404s, unreachable members, fair shares, orphans."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from controller_fakes import FakeApi
from controller_rig import HUB_ID, NAMESPACE, Rig, job_body, member_body

from carbonshift.controller.manifests import LABEL_HUB
from carbonshift.controller.paths import caj_path, job_path
from carbonshift.controller.cycle import Scheduler


def creates(rig: Rig, member: str) -> int:
    """Job creations (not dry runs) the operator sent to ``member``."""
    return len(rig.apis[member].writes("POST", "/jobs"))


def test_a_member_job_left_by_an_earlier_run_is_adopted_not_created_again() -> None:
    async def scenario() -> None:
        rig = Rig(members={"eu-de": "eu-de"})
        rig.add_job(job_body("resumed", regions=["eu-de"]))
        left = rig.existing_member_job("eu-de", "resumed")  # created, then the operator died before the status write
        await rig.cycle()
        status = rig.status("resumed")
        assert status["phase"] == "Dispatched"
        assert status["memberJob"]["uid"] == left["metadata"]["uid"]
        assert creates(rig, "eu-de") == 0 and len(rig.apis["eu-de"].jobs()) == 1
        await rig.close()

    asyncio.run(scenario())


def test_a_create_answered_409_adopts_this_hubs_job() -> None:
    async def scenario() -> None:
        rig = Rig(members={"eu-de": "eu-de"})
        rig.signals.intensity = {"eu-de": [400.0] * 8 + [100.0] * 88}
        rig.add_job(job_body("raced", regions=["eu-de"]))
        await rig.cycle()  # decided for two hours later; the member's Jobs are listed and watched
        # A copy of this hub the watch never showed (made while it was broken), then the job comes due.
        existing = rig.existing_member_job("eu-de", "raced", unseen=True)
        await rig.cycle(advance=timedelta(hours=2))
        status = rig.status("raced")
        assert status["phase"] == "Dispatched"
        assert status["memberJob"]["uid"] == existing["metadata"]["uid"]
        assert creates(rig, "eu-de") == 1  # answered 409, then adopted
        assert len(rig.apis["eu-de"].jobs()) == 1
        await rig.close()

    asyncio.run(scenario())


def test_a_job_of_the_same_name_made_by_another_hub_is_left_alone() -> None:
    async def scenario() -> None:
        rig = Rig(members={"eu-de": "eu-de"})
        rig.add_job(job_body("shared", regions=["eu-de"]))
        theirs = rig.existing_member_job("eu-de", "shared", hub_id="hub-2")
        await rig.cycle()
        await rig.cycle()
        status = rig.status("shared")
        assert status["phase"] == "Waiting" and "memberJob" not in status
        dispatched = rig.condition("shared", "Dispatched")
        assert (dispatched["status"], dispatched["reason"]) == ("False", "DispatchFailed")
        assert "belongs to something else" in dispatched["message"]
        assert [r for r, _ in rig.events("shared")].count("DispatchFailed") == 1  # once, not every cycle
        member = rig.apis["eu-de"]
        assert member.writes("DELETE") == [] and member.writes("PATCH") == []
        assert member.jobs() == [member.objects[job_path(NAMESPACE, theirs["metadata"]["name"])]]
        assert member.jobs()[0]["metadata"]["labels"][LABEL_HUB] == "hub-2"
        await rig.close()

    asyncio.run(scenario())


def test_an_unreachable_member_is_marked_and_its_jobs_go_elsewhere() -> None:
    async def scenario() -> None:
        rig = Rig()
        rig.signals.intensity = {"eu-de": [100.0] * 96, "eu-gb": [400.0] * 96}
        rig.apis["eu-de"].reachable = False
        rig.add_job(job_body("moved", regions=["eu-de", "eu-gb"]))
        await rig.cycle()
        assert rig.status("moved")["memberJob"]["cluster"] == "eu-gb"
        assert rig.member_job("eu-gb", "moved") is not None
        member = rig.hub.objects["/apis/carbonshift.io/v1alpha1/memberclusters/eu-de"]["status"]
        assert (member["phase"], member["ready"]) == ("NotReady", False)
        assert "unreachable" in member["message"]
        await rig.close()

    asyncio.run(scenario())


def test_a_create_that_fails_unreachable_waits_and_marks_the_member() -> None:
    async def scenario() -> None:
        rig = Rig()
        rig.signals.intensity = {"eu-de": [100.0] * 96, "eu-gb": [400.0] * 96}
        rig.add_job(job_body("flaky", regions=["eu-de", "eu-gb"]))
        rig.apis["eu-de"].fail("POST", "/jobs", 0, times=3)  # dry run passes the probe, then the network goes
        await rig.cycle()
        status = rig.status("flaky")
        assert status["phase"] == "Waiting" and "memberJob" not in status
        assert rig.condition("flaky", "Dispatched")["reason"] == "DispatchFailed"
        assert rig.registry.health("eu-de") is not None and not rig.registry.health("eu-de").ready
        assert [r for r, _ in rig.events("flaky")] == ["DispatchFailed"]
        assert rig.metrics.dispatch_errors.labels(cluster="eu-de", operation="create")._value.get() == 1
        await rig.close()

    asyncio.run(scenario())


def test_a_refusing_member_is_asked_again_later_not_every_cycle() -> None:
    async def scenario() -> None:
        rig = Rig(members={"eu-de": "eu-de"})
        rig.add_job(job_body("refused", regions=["eu-de"]))
        rig.apis["eu-de"].fail("POST", "/pods", 403, times=10)  # the member's admission refuses the pod
        await rig.cycle()
        await rig.cycle()
        dispatched = rig.condition("refused", "Dispatched")
        assert (dispatched["status"], dispatched["reason"]) == ("False", "MemberAdmissionRefused")
        assert creates(rig, "eu-de") == 0
        assert len(rig.apis["eu-de"].writes("POST", "/pods", dry_run=True)) == 1  # retried after 15 s, not now
        assert [r for r, _ in rig.events("refused")] == ["MemberAdmissionRefused"]
        await rig.close()

    asyncio.run(scenario())


def test_a_missing_member_namespace_is_created_only_when_the_admin_allows_it() -> None:
    async def scenario() -> None:
        rig = Rig(members={})
        for body in (member_body("eu-de", "eu-de"), member_body("eu-gb", "eu-gb", createNamespaces=True)):
            name = body["metadata"]["name"]
            rig.apis[name] = FakeApi(name)
            rig.apis[name].fail("POST", f"/namespaces/{NAMESPACE}/jobs", 404, times=1)  # namespace "team-a" not found
            rig.add_member(body)
        rig.add_job(job_body("a", regions=["eu-de"]))
        rig.add_job(job_body("b", regions=["eu-gb"]))
        await rig.cycle()
        assert rig.condition("a", "Dispatched")["reason"] == "MemberNamespaceMissing"
        assert rig.apis["eu-de"].writes("POST", "/api/v1/namespaces") == []
        made = rig.apis["eu-gb"].writes("POST", "/api/v1/namespaces")
        assert [c.body["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] for c in made] == ["restricted"]
        assert rig.status("b")["phase"] == "Dispatched"
        await rig.close()

    asyncio.run(scenario())


def test_a_namespace_share_holds_back_jobs_beyond_it() -> None:
    async def scenario() -> None:
        rig = Rig(members={})
        rig.apis["eu-de"] = FakeApi("eu-de")
        rig.add_member(member_body("eu-de", "eu-de", capacity={"maxJobsPerNamespace": 1}))
        for name in ("one", "two"):
            rig.add_job(job_body(name, regions=["eu-de"]))
        await rig.cycle()
        phases = sorted(rig.status(n)["phase"] for n in ("one", "two"))
        assert phases == ["Dispatched", "Waiting"]
        waiting = next(n for n in ("one", "two") if rig.status(n)["phase"] == "Waiting")
        assert rig.condition(waiting, "Dispatched")["reason"] == "NamespaceShareFull"
        assert creates(rig, "eu-de") == 1
        await rig.close()

    asyncio.run(scenario())


def test_the_member_job_of_a_deleted_job_is_deleted_and_released() -> None:
    async def scenario() -> None:
        rig = Rig(members={"eu-de": "eu-de"})
        rig.add_job(job_body("gone", regions=["eu-de"]))
        await rig.cycle()
        copy = rig.member_job("eu-de", "gone")
        assert copy is not None
        # The job is deleted on the hub; the operator's view drops it (the watch's DELETED event).
        rig.hub.objects.pop(caj_path(NAMESPACE, "gone"))
        rig.world.drop_job(NAMESPACE, "gone")
        await rig.cycle(advance=timedelta(seconds=3))  # the orphan scan runs at most every 2 s
        await rig.scheduler.settle()
        member = rig.apis["eu-de"]
        assert [c.method for c in member.writes() if c.path.endswith(copy["metadata"]["name"])] == ["DELETE", "PATCH"]
        assert member.jobs() == []  # deleted, and its record-completion finalizer removed
        await rig.close()

    asyncio.run(scenario())


def test_after_a_restart_a_dispatched_job_is_not_created_again() -> None:
    async def scenario() -> None:
        rig = Rig(members={"eu-de": "eu-de"})
        rig.add_job(job_body("once", regions=["eu-de"]))
        await rig.cycle()
        await rig.close()
        # A new operator process: empty memory, the same servers.
        rig.scheduler = Scheduler(rig.hub, rig.registry, rig.signals, rig.clock,  # type: ignore[arg-type]
                                  rig.settings, rig.metrics, rig.world)
        await rig.cycle()
        await rig.cycle()
        assert creates(rig, "eu-de") == 1 and len(rig.apis["eu-de"].jobs()) == 1
        assert rig.status("once")["phase"] == "Dispatched"
        assert HUB_ID == rig.member_job("eu-de", "once")["metadata"]["labels"][LABEL_HUB]
        await rig.close()

    asyncio.run(scenario())
