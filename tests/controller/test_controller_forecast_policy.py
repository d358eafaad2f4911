"""The operator's forecastPolicy, without a server: a real SignalHub over a fake grid whose provider
forecasts 24 h ahead with a known bias, a fixed clock, and the decision a user reads in the job's
status. ``learned`` corrects the provider by its own recorded errors and values slots past its
horizon from history; ``raw`` plans on the provider's numbers as they are (the behaviour before)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from controller_fakes import T0
from controller_rig import Rig, job_body

from carbonshift.controller import signalhub
from carbonshift.controller.clock import FixedClock
from carbonshift.controller.paths import member_cluster_path
from carbonshift.controller.settings import OperatorSettings
from carbonshift.controller.signalhub import SignalHub
from carbonshift.signals import GuardedProvider, Series, SeriesKind
from carbonshift.timefmt import parse_iso, to_iso

HOUR = timedelta(hours=1)


@dataclass
class FakeGrid:
    """A zone measured as ``actual(hour)``; its provider forecasts ``horizon_h`` hours from the current
    hour as ``actual + bias(lead in hours)``."""

    now: Callable[[], datetime]
    actual: Callable[[datetime], float]
    bias: Callable[[int], float]
    horizon_h: int = 24
    first_lead: int = 0  # 1: the forecast starts at the next hour (the current one is only measured)
    source: str = "fake:grid"
    history_calls: int = 0

    def _hour(self) -> datetime:
        return self.now().replace(minute=0, second=0, microsecond=0)

    def _series(self, points: list[tuple[datetime, float]], kind: SeriesKind) -> Series:
        return Series(points=tuple(points), unit="gCO2eq/kWh", source=self.source, observed_at=self.now(), kind=kind)

    async def current(self) -> Series:
        return self._series([(self._hour(), self.actual(self._hour()))], SeriesKind.ACTUAL)

    async def forecast(self, horizon: timedelta) -> Series:
        first = self._hour()
        return self._series([(first + k * HOUR, self.actual(first + k * HOUR) + self.bias(k))
                             for k in range(self.first_lead, self.horizon_h)], SeriesKind.FORECAST)

    async def history(self, start: datetime, end: datetime) -> Series:
        self.history_calls += 1
        first = start.replace(minute=0, second=0, microsecond=0) + HOUR
        last = min(end, self._hour())
        count = max(0, int((last - first) / HOUR))
        return self._series([(first + i * HOUR, self.actual(first + i * HOUR)) for i in range(count)],
                            SeriesKind.ACTUAL)

    async def aclose(self) -> None:
        return None


def hub_over(grid: Callable[[FixedClock], FakeGrid], monkeypatch: pytest.MonkeyPatch,
             built: list[FakeGrid] | None = None) -> Callable[[FixedClock, OperatorSettings], SignalHub]:
    """The operator's SignalHub, its providers built on the fake grid (behind the real GuardedProvider)."""
    def build(clock: FixedClock, settings: OperatorSettings) -> SignalHub:
        fake = grid(clock)
        if built is not None:
            built.append(fake)
        monkeypatch.setattr(signalhub, "build_provider", lambda config, **_: GuardedProvider(fake, now=clock.now))
        return SignalHub(now=clock.now, secrets=None, slot=settings.slot, horizon=settings.horizon,
                         forecast_policy=settings.forecast_policy, max_horizon=settings.planning_horizon)
    return build


async def record_days(rig: Rig, days: int) -> None:
    """The operator runs for ``days`` with nothing to plan: every hour it reads the region's signals."""
    for _ in range(days * 24):
        await rig.cycle(advance=HOUR)


def submit(rig: Rig, name: str, **spec: Any) -> None:
    body = job_body(name, regions=["eu-de"], **spec)
    body["metadata"]["creationTimestamp"] = to_iso(rig.clock.now())
    rig.add_job(body)


def learned_reason(rig: Rig, name: str) -> str:
    reasons = rig.status(name)["decision"]["reasons"]
    return next(r["message"] for r in reasons if r["code"] == "LearnedForecast")


def flat(_: datetime) -> float:
    return 300.0


def high_first_hours(lead: int) -> float:
    return 50.0 if lead < 4 else 0.0  # the provider over-forecasts the next four hours by 50 g/kWh


def low_everywhere(lead: int) -> float:
    return -50.0  # the provider under-forecasts every hour ahead by 50 g/kWh


def test_a_bias_learned_from_the_providers_own_record_stops_a_pointless_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        grid = hub_over(lambda clock: FakeGrid(clock.now, flat, high_first_hours), monkeypatch)
        rig = Rig(members={"eu-de": "eu-de"}, signals=grid)
        await record_days(rig, 8)
        submit(rig, "report", max_delay="6h")
        await rig.cycle()
        decision = rig.status("report")["decision"]
        # the grid is 300 g/kWh all along: the four "dearer" hours were the provider's bias
        assert parse_iso(decision["start"]) == rig.clock.now()
        reason = learned_reason(rig, "report")
        assert "bias-corrected by up to -50 g/kWh (0 h ahead; learned from 7 days of its forecasts)" in reason
        # the MemberCluster says the same about its signal, job or not
        member = rig.hub.objects[member_cluster_path("eu-de")]["status"]
        fresh = next(c for c in member["conditions"] if c["type"] == "SignalsStale")
        assert fresh["message"].startswith("forecast from fake:grid; fake:grid's forecast bias-corrected by up to -50")
        await rig.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("policy", ["raw", "learned"])
def test_without_a_record_the_biased_forecast_still_moves_the_job(policy: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """raw: today's behaviour, always; learned right after a restart: the same plan, and it says why."""
    async def scenario() -> None:
        grid = hub_over(lambda clock: FakeGrid(clock.now, flat, high_first_hours), monkeypatch)
        rig = Rig(members={"eu-de": "eu-de"}, signals=grid, forecastPolicy=policy)
        submit(rig, "report", max_delay="6h")
        await rig.cycle()
        decision = rig.status("report")["decision"]
        assert parse_iso(decision["start"]) == rig.clock.now() + 4 * HOUR  # after the "dear" hours
        codes = [r["code"] for r in decision["reasons"]]
        if policy == "raw":
            assert "LearnedForecast" not in codes
        else:
            assert "fake:grid's forecast is not bias-corrected: its errors are not known yet (0 of 7 days" \
                in learned_reason(rig, "report")
        await rig.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("policy", ["raw", "learned"])
def test_a_forecast_low_at_every_hour_ahead_delays_only_until_its_bias_is_learned(
        policy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Measured now: 300; forecast from the next hour on: 250, but the grid stays at 300."""
    async def scenario() -> None:
        grid = hub_over(lambda clock: FakeGrid(clock.now, flat, low_everywhere, first_lead=1), monkeypatch)
        rig = Rig(members={"eu-de": "eu-de"}, signals=grid, forecastPolicy=policy)
        await record_days(rig, 8)
        submit(rig, "report", max_delay="6h")
        await rig.cycle()
        start = parse_iso(rig.status("report")["decision"]["start"])
        assert (start > rig.clock.now()) == (policy == "raw")  # raw waits for the "cheaper" next hour
        await rig.close()

    asyncio.run(scenario())


def test_raw_ignores_the_record_too_and_never_asks_for_history(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        grids: list[FakeGrid] = []
        grid = hub_over(lambda clock: FakeGrid(clock.now, flat, high_first_hours), monkeypatch, grids)
        rig = Rig(members={"eu-de": "eu-de"}, signals=grid, forecastPolicy="raw")
        await record_days(rig, 8)
        submit(rig, "report", max_delay="6h")
        await rig.cycle()
        assert parse_iso(rig.status("report")["decision"]["start"]) == rig.clock.now() + 4 * HOUR
        assert grids[0].history_calls == 0
        await rig.close()

    asyncio.run(scenario())


def test_learned_asks_for_history_once_an_hour_however_often_it_plans(monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        grids: list[FakeGrid] = []
        grid = hub_over(lambda clock: FakeGrid(clock.now, flat, high_first_hours), monkeypatch, grids)
        rig = Rig(members={"eu-de": "eu-de"}, signals=grid)
        for _ in range(24):  # two hours of 5-minute cycles, a job waiting all along
            await rig.cycle(advance=timedelta(minutes=5))
            if rig.clock.now() == T0 + timedelta(minutes=5):
                submit(rig, "report", max_delay="6h")
        assert grids[0].history_calls == 2
        await rig.close()

    asyncio.run(scenario())


def nightly_low(at: datetime) -> float:
    return 100.0 if 2 <= at.hour < 6 else 400.0  # every night 02:00-06:00 UTC


@pytest.mark.parametrize("policy", ["raw", "learned"])
def test_a_job_longer_than_the_providers_horizon_is_planned_into_the_nights_history_promises(
        policy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    async def scenario() -> None:
        grid = hub_over(lambda clock: FakeGrid(clock.now, nightly_low, lambda lead: 0.0), monkeypatch)
        rig = Rig(members={"eu-de": "eu-de"}, signals=grid, forecastPolicy=policy)
        await record_days(rig, 8)
        rig.clock.advance(6 * HOUR)  # 06:00: the night just ended
        # 26 h of work: no window of it fits in the provider's 24 h forecast
        submit(rig, "train", duration="26h", max_delay="24h")
        await rig.cycle()
        status = rig.status("train")
        now = rig.clock.now()
        if policy == "raw":
            # every window reaches past the forecast: the job runs at once, as if there were no signal
            decision = status["decision"]
            assert parse_iso(decision["start"]) == now
            assert [r["code"] for r in decision["reasons"]] == ["NoSignalFallback"]
        else:
            decision = status["decision"]
            start = parse_iso(decision["start"])
            # from 02:00 tomorrow: all of tomorrow's night and part of the next, rather than one night
            assert now + 20 * HOUR <= start <= now + 22 * HOUR
            assert "valued from the built-in forecast" in learned_reason(rig, "train")
        await rig.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("policy", ["raw", "learned"])
def test_a_job_longer_than_horizon_hours_is_planned_on_history_past_it(
        policy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """60 h of work, horizonHours 48: no window of it fits in the operator's horizon (nor in the
    provider's 24 h forecast). learned plans it on a grid reaching its deadline, the hours past
    the horizon valued from history; raw finds no window, as before."""
    async def scenario() -> None:
        grid = hub_over(lambda clock: FakeGrid(clock.now, nightly_low, lambda lead: 0.0), monkeypatch)
        rig = Rig(members={"eu-de": "eu-de"}, signals=grid, forecastPolicy=policy)
        await record_days(rig, 8)
        rig.clock.advance(6 * HOUR)  # 06:00: the night just ended
        submit(rig, "train", duration="60h", max_delay="24h")
        await rig.cycle()
        now = rig.clock.now()
        if policy == "raw":  # as before: no window at all, so it waits (until its deadline forces it)
            assert "decision" not in rig.status("train")
            assert rig.condition("train", "Scheduled")["reason"] == "NoCapacity"
        else:
            # from 18:00 it runs through three whole nights (the third past the horizon), from now through two
            start = parse_iso(rig.status("train")["decision"]["start"])
            assert start == now + 12 * HOUR
            assert start + 60 * HOUR > now + 48 * HOUR
            reason = learned_reason(rig, "train")
            assert f"hours from {to_iso(now + 48 * HOUR)} valued from the 7-day profile" in reason
            # its expectedGrams are not all forecast, and the decision says which part is not
            assert reason.startswith(f"the run reaches past the forecast: its hours from {to_iso(now + 48 * HOUR)} "
                                     "are valued from history, not forecast, and expectedGrams counts them at that value")
            assert rig.condition("train", "Scheduled")["status"] == "True"
        await rig.close()

    asyncio.run(scenario())


@dataclass
class Spell:
    """Nights 02:00-06:00 are cheap, except in a windless spell; the test moves the spell."""

    start: datetime
    end: datetime
    night_g_per_kwh: float = 100.0

    def actual(self, at: datetime) -> float:
        if self.start <= at < self.end:
            return 400.0
        return self.night_g_per_kwh if 2 <= at.hour < 6 else 400.0


@pytest.mark.parametrize("policy, max_planning_h", [("raw", 168), ("learned", 168), ("learned", 48)])
def test_a_long_slack_job_waits_past_the_horizon_for_a_night_history_promises_and_is_replanned(
        policy: str, max_planning_h: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """5 days of slack; the next 48 h (all the provider forecasts, and horizonHours) are a windless
    spell. learned: the job waits for the first night after it, valued from history, and moves
    when a later forecast shows an earlier, greener night. raw, or a planning grid capped at the
    horizon: it sees only the spell and runs at once."""
    async def scenario() -> None:
        spell = Spell(T0 + 1000 * HOUR, T0 + 1000 * HOUR)  # none yet
        grid = hub_over(lambda clock: FakeGrid(clock.now, spell.actual, lambda lead: 0.0, horizon_h=48), monkeypatch)
        rig = Rig(members={"eu-de": "eu-de"}, signals=grid, forecastPolicy=policy,
                  maxPlanningHorizonHours=max_planning_h, defaults={"maxDelay": "168h"})
        await record_days(rig, 8)
        rig.clock.advance(6 * HOUR)  # 06:00
        now = rig.clock.now()
        spell.start, spell.end = now, now + 48 * HOUR
        submit(rig, "train", duration="2h", max_delay="120h")
        await rig.cycle()
        start = parse_iso(rig.status("train")["decision"]["start"])
        if policy == "raw" or max_planning_h == 48:
            assert start == now
            await rig.close()
            return
        assert start == now + 68 * HOUR  # 02:00 two nights on: past the spell and past horizonHours
        assert f"hours from {to_iso(now + 48 * HOUR)} valued from the 7-day profile" in learned_reason(rig, "train")
        # nothing forecast says that night is green: the start is a threshold, and the decision says so
        assert learned_reason(rig, "train").startswith(
            f"start provisional: it lies past the forecast (hours from {to_iso(now + 48 * HOUR)} are valued from "
            "history), so it is a threshold to beat, re-planned as the forecast reaches it; expectedGrams is that "
            "valuation, not a forecast")
        assert rig.condition("train", "DeadlineAtRisk")["status"] == "False"
        # the Event says so too: why it waits, and on what the night past the horizon was valued
        (reason, message), = rig.events("train")
        assert reason == "Decided" and "start delayed by 2 days, 20:00:00" in message
        assert "valued from the 7-day profile" in message
        # An hour later nothing new is known: the decision stands (and the job still waits).
        await rig.cycle(advance=HOUR)
        assert parse_iso(rig.status("train")["decision"]["start"]) == start
        assert rig.status("train")["phase"] == "Waiting"
        # The spell breaks early: tonight is forecast windy, greener than history's nights.
        spell.end, spell.night_g_per_kwh = now + 19 * HOUR, 50.0
        await rig.cycle(advance=HOUR)
        assert parse_iso(rig.status("train")["decision"]["start"]) == now + 20 * HOUR
        assert "past the forecast" not in learned_reason(rig, "train")  # tonight is forecast
        assert [reason for reason, _ in rig.events("train")] == ["Decided", "Replanned"]
        await rig.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("policy", ["raw", "learned"])
def test_interruptible_work_with_days_of_slack_is_split_over_nights_past_the_horizon(
        policy: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """12 h of interruptible work, 5 days of slack, nights of 4 cheap hours: learned runs it in
    three nights, the third past horizonHours (48 h); raw knows only the provider's 24 h, one
    night, and starts at once to finish the rest by day."""
    async def scenario() -> None:
        grid = hub_over(lambda clock: FakeGrid(clock.now, nightly_low, lambda lead: 0.0), monkeypatch)
        rig = Rig(members={"eu-de": "eu-de"}, signals=grid, forecastPolicy=policy, defaults={"maxDelay": "168h"})
        await record_days(rig, 8)
        rig.clock.advance(6 * HOUR)  # 06:00
        submit(rig, "train", duration="12h", max_delay="120h", interruptible=True)
        await rig.cycle()
        now = rig.clock.now()
        slots = [(parse_iso(s["start"]), parse_iso(s["end"])) for s in rig.status("train")["decision"]["slots"]]
        if policy == "raw":
            assert slots[0][0] == now
        else:
            assert slots == [(now + (20 + 24 * day) * HOUR, now + (24 + 24 * day) * HOUR) for day in range(3)]
            assert slots[-1][0] > now + 48 * HOUR
        await rig.close()

    asyncio.run(scenario())
