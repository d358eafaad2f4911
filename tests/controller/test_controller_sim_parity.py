"""The simulator's replay of the operator's cycle (``sim.online``) keeps and moves decisions as the
operator does: the same forecasts issued at the same times lead both to the same window, also
when a newer forecast made the decided window dearer or cheaper (the hysteresis re-costs it)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from controller_fakes import T0
from controller_rig import Rig, job_body

from carbonshift.core import PlannerOptions
from carbonshift.sim import online
from carbonshift.sim.forecasts import ForecastSource, Grid
from carbonshift.sim.traces import Trace
from carbonshift.sim.workloads import SimJob
from carbonshift.timefmt import parse_iso

SLOT = timedelta(minutes=15)
N = 96
WATTS = 500.0


def profile(base: float, **windows: float) -> np.ndarray:
    """``N`` quarter-hours at ``base`` g/kWh, with ``s<first>_<last>=value`` windows."""
    values = np.full(N, base)
    for key, value in windows.items():
        first, last = (int(x) for x in key[1:].split("_"))
        values[first:last + 1] = value
    return values


def operator_start_slot(first: np.ndarray, later: np.ndarray, run_now_below: float | None) -> int:
    """The operator: decides at T0 on ``first``, re-plans a slot later on ``later``."""
    async def scenario() -> int:
        rig = Rig(members={"eu-de": "eu-de"})
        if run_now_below is not None:
            rig.add_policy("default", runNowBelowIntensity=run_now_below)
        rig.signals.intensity = {"eu-de": first.tolist()}
        rig.add_job(job_body("parity", regions=["eu-de"], watts=WATTS))
        await rig.cycle()
        rig.signals.intensity = {"eu-de": later[1:].tolist()}  # the signal hub's grid starts at now
        await rig.cycle(advance=SLOT)
        start = parse_iso(rig.status("parity")["decision"]["start"])
        await rig.close()
        return int((start - T0) / SLOT)

    return asyncio.run(scenario())


def simulated_g(first: np.ndarray, later: np.ndarray, run_now_below: float | None) -> float:
    """The simulator on the same forecasts (``first`` issued at slot 0, ``later`` from slot 1 on),
    scored on ``later`` as the actual values."""
    index = pd.date_range(T0, periods=N, freq=SLOT)
    trace = Trace(pd.DataFrame({"DE": later}, index=index))
    grid = Grid(later, T0.timestamp(), int(SLOT.total_seconds()))

    def issue(ts: np.ndarray, n: int) -> np.ndarray:
        out = np.full((ts.shape[0], n), np.nan)
        for row, t in enumerate(ts):
            values = (first if t == 0 else later)[t:t + n]
            out[row, :values.shape[0]] = values
        return out

    source = ForecastSource("two-issues", grid, None, issue)
    job = SimJob("parity", T0, T0, timedelta(hours=1), T0 + timedelta(hours=7))  # maxDelay 6h, as job_body
    setup = online.Setup(region="DE", power_w=WATTS, bound=False,
                         options=PlannerOptions(run_now_below_g_per_kwh=run_now_below))
    return float(online.online(trace, [job], setup, source)["planned_g"])  # type: ignore[arg-type]


@pytest.mark.parametrize(("first", "later", "run_now_below", "slot"), [
    # the decided window (T0+2h) 30 % dearer: both move to T0+4h, not 5 % below the old figure
    (profile(400, s8_11=100, s16_19=110), profile(400, s8_11=130, s16_19=110), None, 16),
    # the decided window cheaper: running now (below the threshold) beats only its old figure, both keep it
    (profile(400, s8_11=100), profile(400, s0_5=80, s8_11=50), 90.0, 8),
], ids=["window-dearer", "window-cheaper"])
def test_the_simulator_keeps_and_moves_a_decision_as_the_operator_does(
        first: np.ndarray, later: np.ndarray, run_now_below: float | None, slot: int) -> None:
    assert operator_start_slot(first, later, run_now_below) == slot
    assert simulated_g(first, later, run_now_below) == pytest.approx(later[slot:slot + 4].sum() * WATTS * 0.25 / 1000)
