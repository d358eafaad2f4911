"""The learned policy's hourly refit runs off the event loop: a real SignalHub and Scheduler over the
fake grid of test_controller_forecast_policy. The refit runs in another thread while the loop
keeps serving (watches, probes, dispatches), and the cycle plans on the refit's result, the same
one an on-loop refit gives."""

from __future__ import annotations

import asyncio
import threading

import pytest
from controller_rig import Rig
from test_controller_forecast_policy import HOUR, FakeGrid, flat, high_first_hours, hub_over, learned_reason, record_days, submit

from carbonshift.signals.conditioning import ForecastConditioner


def test_the_refit_runs_in_another_thread_while_the_loop_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    loop_thread = threading.get_ident()
    refit_threads: list[int] = []
    names: list[str] = []
    loop_ran_meanwhile: list[bool] = []
    compute = ForecastConditioner._compute
    in_refit, released = threading.Event(), threading.Event()

    def watched(self: ForecastConditioner, *args: object) -> object:
        refit_threads.append(threading.get_ident())
        names.append(threading.current_thread().name)
        in_refit.set()
        # Waits for the loop to do something else: on the loop's own thread this would wait in vain.
        loop_ran_meanwhile.append(released.wait(timeout=30))
        in_refit.clear()
        return compute(self, *args)

    async def scenario() -> None:
        grid = hub_over(lambda clock: FakeGrid(clock.now, flat, high_first_hours), monkeypatch)
        rig = Rig(members={"eu-de": "eu-de"}, signals=grid)
        await record_days(rig, 8)  # (on the loop: the patch comes after)
        monkeypatch.setattr(ForecastConditioner, "_compute", watched)

        async def other_work() -> None:  # a watch event, a probe: anything else on the loop
            while True:
                if in_refit.is_set():
                    released.set()
                await asyncio.sleep(0.001)

        other = asyncio.create_task(other_work())
        submit(rig, "report", max_delay="6h")
        await rig.cycle(advance=HOUR)  # a new issue hour: the refit
        other.cancel()
        assert refit_threads and loop_thread not in refit_threads
        assert all(name.startswith("carbonshift-refit") for name in names)  # the one refit worker
        assert all(loop_ran_meanwhile)
        # and the cycle planned on the refit's result: the bias learned over 8 days is corrected
        assert "bias-corrected by up to -50 g/kWh (0 h ahead; learned from 8 days" in learned_reason(rig, "report")
        await rig.close()

    asyncio.run(scenario())
