"""``simulate``'s replay of the operator's cycle (``sim.online``): its hysteresis re-costs the decided
slots on the forecast issued at each slot, as the operator re-costs a decided window."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest

from carbonshift.sim import online
from carbonshift.sim.forecasts import ForecastSource, Grid
from carbonshift.sim.traces import Trace
from carbonshift.sim.workloads import SimJob

T0 = datetime(2021, 7, 1, tzinfo=timezone.utc)
SLOT = timedelta(minutes=30)
N = 48
WATTS = 1000.0


def replay(first: np.ndarray, later: np.ndarray, interruptible: bool, improvement: float = 0.05) -> float:
    """Grams on ``later`` (the actual values) of one 2-hour job submitted at T0 with 12 h of slack,
    decided on ``first`` (issued at slot 0) and re-planned on ``later`` (issued from slot 1 on)."""
    index = pd.date_range(T0, periods=N, freq=SLOT)
    trace = Trace(pd.DataFrame({"DE": later}, index=index))

    def issue(ts: np.ndarray, n: int) -> np.ndarray:
        out = np.full((ts.shape[0], n), np.nan)
        for row, t in enumerate(ts):
            values = (first if t == 0 else later)[t:t + n]
            out[row, :values.shape[0]] = values
        return out

    source = ForecastSource("two-issues", Grid(later, T0.timestamp(), 1800), None, issue)
    job = SimJob("j", T0, T0, timedelta(hours=2), T0 + timedelta(hours=14))
    setup = online.Setup(region="DE", interruptible=interruptible, power_w=WATTS, bound=False,
                         replan_min_improvement=improvement)
    return float(online.online(trace, [job], setup, source)["planned_g"])  # type: ignore[arg-type]


def series(**slots: float) -> np.ndarray:
    values = np.full(N, 400.0)
    for key, value in slots.items():
        first, last = (int(x) for x in key[1:].split("_"))
        values[first:last + 1] = value
    return values


@pytest.mark.parametrize("interruptible", [False, True], ids=["one-run", "interruptible"])
def test_decided_slots_a_newer_forecast_made_dearer_are_left_for_the_now_cheapest(interruptible: bool) -> None:
    # decided on slots 4-7 at 100 g/kWh (200 g); from slot 1 on they are forecast at 150, slots 10-13 at 105
    first, later = series(s4_7=100, s10_13=105), series(s4_7=150, s10_13=105)
    assert replay(first, later, interruptible) == pytest.approx(210.0)  # 105 g/kWh x 2 kWh: moved


def test_a_smaller_rise_than_the_hysteresis_keeps_the_decided_slots() -> None:
    first, later = series(s4_7=100, s10_13=105), series(s4_7=108, s10_13=105)  # 105 is not 5 % below 108
    assert replay(first, later, False) == pytest.approx(216.0)
    assert replay(first, later, False, improvement=0.02) == pytest.approx(210.0)  # it is 2 % below
