"""Jobs already dispatched, without a server: green windows, relocation, the end of a run, and a
member Job that was deleted or vanished."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from controller_rig import NAMESPACE, Rig, job_body

from carbonshift.controller.manifests import FINALIZER_RECORD
from carbonshift.controller.paths import job_path


def split_windows() -> list[float]:
    """eu-de: green for 30 min now and 30 min two hours later, dirty in between and after."""
    return [50.0] * 2 + [500.0] * 6 + [50.0] * 2 + [900.0] * 86


async def dispatched_interruptible(rig: Rig, name: str, **spec: object) -> None:
    rig.signals.intensity = {"eu-de": split_windows(), "eu-gb": [900.0] * 96}
    rig.add_job(job_body(name, regions=["eu-de", "eu-gb"], interruptible=True, **spec))  # type: ignore[arg-type]
    await rig.cycle()
    assert rig.status(name)["phase"] == "Dispatched"
    assert [(w["start"][11:16], w["end"][11:16]) for w in rig.status(name)["decision"]["slots"]] == \
        [("00:00", "00:30"), ("02:00", "02:30")]


def test_interruptible_work_is_suspended_between_windows_and_resumed_in_the_next() -> None:
    async def scenario() -> None:
        rig = Rig()
        await dispatched_interruptible(rig, "windows")
        rig.signals.intensity = {"eu-de": split_windows()[2:], "eu-gb": [900.0] * 96}
        await rig.cycle(advance=timedelta(minutes=30))
        assert rig.status("windows")["phase"] == "Suspended"
        assert rig.member_job("eu-de", "windows")["spec"]["suspend"] is True
        await rig.cycle(advance=timedelta(minutes=90))
        assert rig.status("windows")["phase"] == "Dispatched"  # resumed; its pods not running yet
        assert rig.member_job("eu-de", "windows")["spec"]["suspend"] is False
        assert [r for r, _ in rig.events("windows")] == ["Dispatched", "Suspended", "Resumed"]
        await rig.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(("gb", "allowed", "moves"), [
    (10.0, True, True),  # far greener elsewhere, relocation allowed: moved
    (10.0, False, False),  # the job does not allow relocation: stays
    (48.0, True, False),  # 4 % greener: below replanMinImprovement, stays
], ids=["greener-moves", "not-allowed-stays", "small-gain-stays"])
def test_suspended_interruptible_work_moves_only_when_allowed_and_clearly_greener(gb: float, allowed: bool,
                                                                                 moves: bool) -> None:
    async def scenario() -> None:
        rig = Rig()
        await dispatched_interruptible(rig, "mover", relocation=allowed)
        rig.signals.intensity = {"eu-de": split_windows()[2:], "eu-gb": [900.0] * 96}
        await rig.cycle(advance=timedelta(minutes=30))
        assert rig.status("mover")["phase"] == "Suspended"
        rig.signals.intensity = {"eu-de": split_windows()[2:], "eu-gb": [gb] * 96}
        await rig.cycle()
        status = rig.status("mover")
        where = "eu-gb" if moves else "eu-de"
        assert status["memberJob"]["cluster"] == where and status["decision"]["cluster"] == where
        assert ("Relocated" in [r["code"] for r in status["decision"]["reasons"]]) == moves
        assert ("Relocated" in [r for r, _ in rig.events("mover")]) == moves
        assert (rig.member_job("eu-gb", "mover") is not None) == moves
        assert (rig.member_job("eu-de", "mover") is None) == moves  # the old copy deleted and released
        if moves:
            assert [h["cluster"] for h in status["history"]] == ["eu-de"]
        await rig.close()

    asyncio.run(scenario())


def test_a_relocation_whose_decision_is_not_written_touches_no_member() -> None:
    """The new decision is written before the old copy is deleted and the new one made; if the hub does
    not take it, a restart would see a copy in the new cluster as a stray: so nothing moves this cycle."""
    async def scenario() -> None:
        rig = Rig()
        await dispatched_interruptible(rig, "stuck", relocation=True)
        rig.signals.intensity = {"eu-de": split_windows()[2:], "eu-gb": [900.0] * 96}
        await rig.cycle(advance=timedelta(minutes=30))
        assert rig.status("stuck")["phase"] == "Suspended"
        rig.signals.intensity = {"eu-de": split_windows()[2:], "eu-gb": [10.0] * 96}
        rig.hub.fail("PATCH", "carbonawarejobs/stuck/status", 500, times=100)
        await rig.cycle()
        assert rig.member_job("eu-de", "stuck") is not None and rig.member_job("eu-gb", "stuck") is None
        assert not rig.apis["eu-gb"].writes("POST", "/jobs")
        assert rig.status("stuck")["decision"]["cluster"] == "eu-de"
        rig.hub.faults.clear()
        await rig.cycle(advance=timedelta(seconds=31))
        status = rig.status("stuck")
        assert status["decision"]["cluster"] == "eu-gb" and status["memberJob"]["cluster"] == "eu-gb"
        assert rig.member_job("eu-de", "stuck") is None and rig.member_job("eu-gb", "stuck") is not None
        await rig.close()

    asyncio.run(scenario())


def test_a_finished_run_is_recorded_before_its_member_job_is_released() -> None:
    async def scenario() -> None:
        rig = Rig(members={"eu-de": "eu-de"})
        rig.add_job(job_body("done", regions=["eu-de"], watts=1000))
        await rig.cycle()
        rig.finish_member_job("eu-de", "done")
        await rig.cycle()
        status = rig.status("done")
        assert status["phase"] == "Succeeded"
        complete = next(c for c in status["conditions"] if c["type"] == "Complete")
        assert (complete["status"], complete["reason"]) == ("True", "Succeeded")
        assert status["emissions"]["energyWattHours"] == pytest.approx(1000 * 1.0 * 1.2, rel=1e-3)  # 1 h, PUE 1.2
        recorded = [c for c in rig.hub.writes("PATCH", "/status") if (c.body["status"].get("phase") == "Succeeded")]
        released = [c for c in rig.apis["eu-de"].writes("PATCH") if "$deleteFromPrimitiveList/finalizers"
                    in (c.body.get("metadata") or {})]
        assert len(recorded) == 1 and len(released) == 1
        assert recorded[0].seq < released[0].seq  # the hub holds the record first
        assert FINALIZER_RECORD not in (rig.member_job("eu-de", "done")["metadata"].get("finalizers") or [])
        assert [r for r, _ in rig.events("done")] == ["Dispatched", "Succeeded"]
        await rig.close()

    asyncio.run(scenario())


def test_a_status_write_that_fails_keeps_the_member_job_held() -> None:
    async def scenario() -> None:
        rig = Rig(members={"eu-de": "eu-de"})
        rig.add_job(job_body("held", regions=["eu-de"]))
        await rig.cycle()
        rig.finish_member_job("eu-de", "held")
        rig.hub.fail("PATCH", "carbonawarejobs/held/status", 500)
        await rig.cycle()
        assert rig.status("held")["phase"] == "Dispatched"  # not recorded ...
        assert FINALIZER_RECORD in rig.member_job("eu-de", "held")["metadata"]["finalizers"]  # ... so not let go
        await rig.cycle(advance=timedelta(seconds=31))  # a job with nothing new is looked at again within 30 s
        assert rig.status("held")["phase"] == "Succeeded"
        assert not rig.member_job("eu-de", "held")["metadata"].get("finalizers")
        await rig.close()

    asyncio.run(scenario())


def test_a_member_job_that_vanished_is_reported_lost_and_never_run_again() -> None:
    async def scenario() -> None:
        rig = Rig(members={"eu-de": "eu-de"})
        rig.add_job(job_body("lost", regions=["eu-de"]))
        await rig.cycle()
        copy = rig.member_job("eu-de", "lost")
        rig.apis["eu-de"].remove(job_path(NAMESPACE, copy["metadata"]["name"]))  # finalizer removed by hand
        await rig.cycle()
        status = rig.status("lost")
        assert status["phase"] == "Failed"
        failed = next(c for c in status["conditions"] if c["type"] == "Failed")
        assert (failed["status"], failed["reason"]) == ("True", "MemberJobLost")
        assert len(rig.apis["eu-de"].writes("POST", "/jobs")) == 1 and rig.apis["eu-de"].jobs() == []
        assert [r for r, _ in rig.events("lost")] == ["Dispatched", "MemberJobLost"]
        await rig.close()

    asyncio.run(scenario())


def test_a_member_job_deleted_while_it_runs_fails_the_job_then_is_let_go() -> None:
    async def scenario() -> None:
        rig = Rig(members={"eu-de": "eu-de"})
        rig.add_job(job_body("cut", regions=["eu-de"]))
        await rig.cycle()
        copy = rig.member_job("eu-de", "cut")
        await rig.apis["eu-de"].request("DELETE", job_path(NAMESPACE, copy["metadata"]["name"]))  # a person
        await rig.cycle()
        status = rig.status("cut")
        assert status["phase"] == "Failed"
        assert next(c for c in status["conditions"] if c["type"] == "Failed")["reason"] == "MemberJobDeleted"
        assert rig.apis["eu-de"].jobs() == []  # its finalizer removed once the end was recorded
        assert len(rig.apis["eu-de"].writes("POST", "/jobs")) == 1
        await rig.close()

    asyncio.run(scenario())
