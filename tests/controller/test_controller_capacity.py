"""Capacity held by decisions being carried out, without a server: a job whose member Job is being
created (its create not yet answered) keeps its place in a full cluster, whatever its plan said."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import timedelta

import pytest
from controller_fakes import FakeApi
from controller_rig import Rig, job_body, member_body


def one_slot_cluster() -> Rig:
    """One member cluster, region ca-one, room for one job at a time."""
    rig = Rig(members={})
    rig.apis["ca-one"] = FakeApi("ca-one")
    rig.add_member(member_body("ca-one", "ca-one", capacity={"maxConcurrentJobs": 1}))
    return rig


async def until(check: Callable[[], bool], what: str) -> None:
    """Lets the operator's tasks run until ``check`` holds (the fakes answer at once; a held call never)."""
    for _ in range(1000):
        if check():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never: {what}")


def creates(rig: Rig) -> int:
    return len(rig.apis["ca-one"].writes("POST", "/jobs"))


async def planned(rig: Rig, name: str) -> None:
    """Lets the writes of job ``name`` finish, or its create be sent."""
    uid = rig.job(name)["metadata"]["uid"]
    await until(lambda: not rig.scheduler.tasks.busy(uid) or creates(rig) > 1, f"{name} is planned")


@pytest.mark.parametrize("first", [
    # Its deadline cannot be met any more: run now, best effort (the planner calls that plan infeasible).
    pytest.param({"deadline": "2022-06-01T01:00:00Z", "duration": "2h"}, id="run-now-deadline-unmeetable"),
    # No room to wait: the deadline is near.
    pytest.param({"max_delay": "1m", "duration": "2h"}, id="run-now-deadline-near"),
    # Greenest now, within its deadline.
    pytest.param({"max_delay": "6h", "duration": "2h"}, id="run-now-greenest"),
])
def test_a_run_now_dispatch_in_flight_keeps_its_place_in_a_full_cluster(first: dict[str, str]) -> None:
    async def scenario() -> None:
        rig = one_slot_cluster()
        created = rig.apis["ca-one"].hold("POST", "/jobs")  # the member is slow to answer the create
        rig.add_job(job_body("first", regions=["ca-one"], **first))
        await rig.scheduler.cycle()  # first is due now: its create is sent, not yet answered
        await until(lambda: creates(rig) == 1, "first's create is sent")
        rig.add_job(job_body("second", regions=["ca-one"], max_delay="1m", duration="2h"))
        await rig.scheduler.cycle()  # planned while first's create is in flight
        await planned(rig, "second")
        assert creates(rig) == 1, "second was sent to the full cluster"
        assert_not_placed(rig, "second")

        created.set()  # the member answers; first is dispatched, second still has no room
        await rig.scheduler.settle()
        await rig.cycle(advance=timedelta(seconds=5))
        assert rig.status("first")["phase"] == "Dispatched"
        assert_not_placed(rig, "second")
        assert len(rig.apis["ca-one"].jobs()) == 1
        await rig.close()

    asyncio.run(scenario())


def test_a_planned_start_in_flight_keeps_its_place_in_a_full_cluster() -> None:
    async def scenario() -> None:
        rig = one_slot_cluster()
        rig.signals.intensity = {"ca-one": [400.0] * 8 + [100.0] * 88}
        rig.add_job(job_body("first", regions=["ca-one"], max_delay="6h", duration="2h"))
        await rig.cycle()
        assert rig.status("first")["phase"] == "Waiting" and rig.status("first")["decision"]["start"] == "2022-06-01T02:00:00Z"
        created = rig.apis["ca-one"].hold("POST", "/jobs")
        rig.clock.advance(timedelta(hours=2))
        await rig.scheduler.cycle()  # its start has come: the create is sent, not yet answered
        await until(lambda: creates(rig) == 1, "first's create is sent")
        rig.add_job(job_body("second", regions=["ca-one"], max_delay="1m", duration="2h"))
        await rig.scheduler.cycle()
        await planned(rig, "second")
        assert creates(rig) == 1, "second was sent to the full cluster"
        assert_not_placed(rig, "second")

        created.set()
        await rig.scheduler.settle()
        await rig.cycle(advance=timedelta(seconds=5))
        assert rig.status("first")["phase"] == "Dispatched"
        assert_not_placed(rig, "second")
        assert len(rig.apis["ca-one"].jobs()) == 1
        await rig.close()

    asyncio.run(scenario())


def assert_not_placed(rig: Rig, name: str) -> None:
    """Waiting, with no decision, saying it has no room (before its deadline, or at all)."""
    status = rig.status(name)
    scheduled = rig.condition(name, "Scheduled")
    assert (status["phase"], scheduled["status"]) == ("Waiting", "False"), status
    assert scheduled["reason"] in ("NoCapacity", "DeadlineUnmeetable")
    assert "decision" not in status and "memberJob" not in status


def test_a_running_job_with_writes_in_flight_keeps_its_place() -> None:
    async def scenario() -> None:
        rig = one_slot_cluster()
        rig.add_job(job_body("first", regions=["ca-one"], max_delay="1m", duration="2h"))
        await rig.cycle()
        assert rig.status("first")["phase"] == "Dispatched"
        # Its pods start; the status write that says so is slow to be answered.
        job = rig.member_job("ca-one", "first")
        assert job is not None
        path = f"/apis/batch/v1/namespaces/{job['metadata']['namespace']}/jobs/{job['metadata']['name']}"
        rig.apis["ca-one"].put(path, {**job, "status": {"active": 1, "startTime": "2022-06-01T00:00:05Z"}})
        written = rig.hub.hold("PATCH", "/carbonawarejobs/first/status")
        before = len(rig.hub.writes("PATCH", "/carbonawarejobs/first/status"))
        await rig.scheduler.cycle()
        await until(lambda: len(rig.hub.writes("PATCH", "/carbonawarejobs/first/status")) > before,
                    "first's status write is sent")
        rig.add_job(job_body("second", regions=["ca-one"], max_delay="1m", duration="2h"))
        await rig.scheduler.cycle()  # planned while first's write is in flight
        await planned(rig, "second")
        assert creates(rig) == 1, "second was sent to the full cluster"
        assert_not_placed(rig, "second")
        written.set()
        await rig.scheduler.settle()
        await rig.close()

    asyncio.run(scenario())
