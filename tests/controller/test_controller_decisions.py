"""Decisions for waiting jobs, without a server: where and when, hysteresis, deadlines, dry run,
stale signals, invalid specs. Each test reads what a user would: the job's status, conditions and
Events on the hub, and the Jobs (and calls) in the members."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from controller_fakes import T0
from controller_rig import Rig, job_body

from carbonshift.timefmt import to_iso


def profile(base: float, **windows: float) -> list[float]:
    """96 quarter-hours at ``base`` g/kWh, with ``s<first>_<last>=value`` windows (slot numbers)."""
    values = [base] * 96
    for key, value in windows.items():
        first, last = (int(x) for x in key[1:].split("_"))
        values[first:last + 1] = [value] * (last - first + 1)
    return values


def reasons(rig: Rig, name: str) -> list[str]:
    return [r["code"] for r in (rig.status(name).get("decision") or {}).get("reasons") or []]


def test_a_job_waits_for_the_greener_window_then_runs_there() -> None:
    async def scenario() -> None:
        rig = Rig()
        rig.signals.intensity = {"eu-de": profile(400, s8_11=100), "eu-gb": profile(450)}
        rig.add_job(job_body("nightly", regions=["eu-de", "eu-gb"]))
        await rig.cycle()
        status = rig.status("nightly")
        assert status["phase"] == "Waiting"
        assert status["decision"]["cluster"] == "eu-de"
        assert status["decision"]["start"] == to_iso(T0 + timedelta(hours=2))
        assert rig.condition("nightly", "Scheduled")["status"] == "True"
        assert [r for r, _ in rig.events("nightly")] == ["Decided"]
        assert rig.apis["eu-de"].writes("POST", "/jobs") == []  # nothing is created before the start

        rig.signals.intensity = {"eu-de": profile(100), "eu-gb": profile(450)}
        await rig.cycle(advance=timedelta(hours=2))
        status = rig.status("nightly")
        assert status["phase"] == "Dispatched"
        assert status["memberJob"]["cluster"] == "eu-de"
        assert rig.member_job("eu-de", "nightly") is not None and rig.member_job("eu-gb", "nightly") is None
        assert [r for r, _ in rig.events("nightly")] == ["Decided", "Dispatched"]
        await rig.close()

    asyncio.run(scenario())


def test_a_job_runs_at_once_in_a_greener_region() -> None:
    async def scenario() -> None:
        rig = Rig()
        rig.signals.intensity = {"eu-de": profile(400), "eu-gb": profile(90)}
        rig.add_job(job_body("placed", regions=["eu-de", "eu-gb"], preferred="eu-de"))
        await rig.cycle()
        status = rig.status("placed")
        assert (status["phase"], status["decision"]["region"], status["memberJob"]["cluster"]) == \
            ("Dispatched", "eu-gb", "eu-gb")
        assert status["decision"]["baselineGrams"] > status["decision"]["expectedGrams"]  # baseline: home eu-de
        assert rig.member_job("eu-de", "placed") is None
        await rig.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(("better", "replanned"), [
    (97.0, False),  # 3 % less than the decided window: below replanMinImprovement (5 %), kept
    (40.0, True),  # 60 % less: decided again, the old decision kept in history
], ids=["small-gain-kept", "large-gain-replanned"])
def test_hysteresis_keeps_a_decision_unless_the_gain_is_clear(better: float, replanned: bool) -> None:
    async def scenario() -> None:
        rig = Rig(members={"eu-de": "eu-de"})
        rig.signals.intensity = {"eu-de": profile(400, s8_11=100)}
        rig.add_job(job_body("steady", regions=["eu-de"]))
        await rig.cycle()
        first = rig.status("steady")["decision"]
        rig.signals.intensity = {"eu-de": profile(400, s8_11=100, s16_19=better)}
        await rig.cycle()
        status = rig.status("steady")
        if replanned:
            assert status["decision"]["start"] == to_iso(T0 + timedelta(hours=4))
            assert status["history"] == [first]
            assert [r for r, _ in rig.events("steady")] == ["Decided", "Replanned"]
        else:
            assert status["decision"] == first
            assert not status.get("history")
            assert [r for r, _ in rig.events("steady")] == ["Decided"]
        await rig.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(("deadline_after", "at_risk", "start_after"), [
    (timedelta(minutes=65), True, timedelta(0)),  # 1 h of work, 65 min left: no room to wait
    (timedelta(hours=10), False, timedelta(hours=2)),  # room: it waits for the green window
], ids=["deadline-near", "deadline-far"])
def test_a_near_deadline_starts_the_job_now_and_says_so(deadline_after: timedelta, at_risk: bool,
                                                       start_after: timedelta) -> None:
    async def scenario() -> None:
        rig = Rig(members={"eu-de": "eu-de"})
        rig.signals.intensity = {"eu-de": profile(400, s8_11=100)}
        rig.add_job(job_body("urgent", regions=["eu-de"], deadline=to_iso(T0 + deadline_after)))
        await rig.cycle()
        status = rig.status("urgent")
        risk = rig.condition("urgent", "DeadlineAtRisk")
        assert risk["status"] == ("True" if at_risk else "False")
        assert risk["reason"] == ("RunNowDeadlineNear" if at_risk else "DeadlineSafe")
        assert status["decision"]["start"] == to_iso(T0 + start_after)
        assert (rig.member_job("eu-de", "urgent") is not None) == at_risk
        await rig.close()

    asyncio.run(scenario())


def test_dry_run_reports_the_decision_and_runs_the_job_at_once() -> None:
    async def scenario() -> None:
        rig = Rig(members={"eu-de": "eu-de"})
        rig.signals.intensity = {"eu-de": profile(400, s8_11=100)}
        rig.add_policy("default", dryRun=True)
        rig.add_job(job_body("trial", regions=["eu-de"]))
        await rig.cycle()
        status = rig.status("trial")
        # The decision says what would have happened (wait two hours) ...
        assert status["decision"]["start"] == to_iso(T0 + timedelta(hours=2))
        assert "DryRun" in reasons(rig, "trial")
        # ... and the job is not delayed.
        assert status["phase"] == "Dispatched"
        assert rig.member_job("eu-de", "trial") is not None
        assert [r for r, _ in rig.events("trial")] == ["Dispatched"]
        await rig.close()

    asyncio.run(scenario())


@pytest.mark.parametrize(("fallback", "runs_now"), [("runNow", True), ("lastForecast", False)])
def test_a_stale_signal_is_reported_and_the_policy_fallback_decides(fallback: str, runs_now: bool) -> None:
    async def scenario() -> None:
        rig = Rig(members={"eu-de": "eu-de"})
        rig.signals.intensity = {"eu-de": profile(400, s8_11=100)}
        rig.signals.observed_age = {"eu-de": timedelta(hours=3)}  # maxSignalAge is 1 h
        rig.add_policy("default", signalFallback=fallback)
        rig.add_job(job_body("stale", regions=["eu-de"]))
        await rig.cycle()
        stale = rig.condition("stale", "SignalsStale")
        assert (stale["status"], stale["reason"]) == ("True", "SignalsStale")
        assert f"policy fallback: {fallback}" in stale["message"] and "3:00:00 old" in stale["message"]
        assert ("NoSignalFallback" in reasons(rig, "stale")) == runs_now
        assert (rig.member_job("eu-de", "stale") is not None) == runs_now
        await rig.close()

    asyncio.run(scenario())


def test_a_provider_error_is_named_in_the_stale_condition() -> None:
    async def scenario() -> None:
        rig = Rig(members={"eu-de": "eu-de"})
        rig.signals.errors = {"eu-de": "electricitymaps: HTTP 503"}
        rig.add_job(job_body("errs", regions=["eu-de"]))
        await rig.cycle()
        assert "eu-de: electricitymaps: HTTP 503" in rig.condition("errs", "SignalsStale")["message"]
        member = rig.hub.objects["/apis/carbonshift.io/v1alpha1/memberclusters/eu-de"]["status"]
        assert next(c for c in member["conditions"] if c["type"] == "SignalsStale")["reason"] == "ProviderError"
        await rig.close()

    asyncio.run(scenario())


def test_an_invalid_job_is_pending_with_one_event_and_does_not_block_others() -> None:
    async def scenario() -> None:
        rig = Rig(members={"eu-de": "eu-de"})
        rig.add_job(job_body("nowhere", regions=["mars"]))
        rig.add_job(job_body("fine", regions=["eu-de"]))
        await rig.cycle()
        await rig.cycle()
        status = rig.status("nowhere")
        assert status["phase"] == "Pending" and status["message"].startswith("not valid: ")
        valid = rig.condition("nowhere", "Valid")
        assert (valid["status"], valid["reason"]) == ("False", "InvalidSpec") and "mars" in valid["message"]
        assert [r for r, _ in rig.events("nowhere")] == ["Invalid"]  # once, not every cycle
        assert rig.status("fine")["phase"] == "Dispatched"
        await rig.close()

    asyncio.run(scenario())
