"""Re-costing a decided window on newer signals (``core.recost``), the hysteresis's yardstick:
the planner's own figure for its own plan, the window's current cost on a moved grid, and no
figure when the window is not on the grid."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from core_strategies import SLOT, T0, jobs
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonshift.core import Battery, Job, RegionSignals, build_snapshot, plan_job
from carbonshift.core.recost import grid_slots, slots_cost_g, window_cost_g


@st.composite
def onsite_regions(draw: st.DrawFn) -> list[RegionSignals]:
    n = draw(st.integers(4, 12))
    out = []
    for name in ("a", "b")[: draw(st.integers(1, 2))]:
        values = np.array(draw(st.lists(st.integers(10, 600), min_size=n, max_size=n)), dtype=float)
        solar = battery = None
        if draw(st.booleans()):
            solar = np.array(draw(st.lists(st.sampled_from([0.0, 300.0, 1200.0]), min_size=n, max_size=n)))
        if draw(st.booleans()):
            battery = Battery(2000.0, draw(st.sampled_from([0.3, 0.9])), 0.2, draw(st.sampled_from([400.0, float("inf")])))
        out.append(RegionSignals(name, T0, SLOT, values, solar_w=solar, battery=battery,
                                 pue=draw(st.sampled_from([1.0, 1.3]))))
    return out


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_a_fresh_plan_re_costed_on_its_own_signals_costs_what_the_planner_expected(data: st.DataObject) -> None:
    regions = data.draw(onsite_regions())
    snap = build_snapshot(regions)
    job = data.draw(jobs(snap.n_slots, snap.regions))
    plan = plan_job(job, snap)
    if not plan.feasible or plan.region is None or plan.end is None or plan.end > snap.time_of(snap.n_slots):
        return
    cost = slots_cost_g(snap, plan.region, plan.slots, plan.slot_fractions, job.it_power_w)
    assert cost == pytest.approx(plan.expected_g, rel=1e-9, abs=1e-9)
    if not job.interruptible and plan.start is not None:  # the same from its times, as the operator records them
        timed = window_cost_g(snap, plan.region, [(plan.start, plan.start + job.duration)], job.it_power_w)
        assert timed == pytest.approx(plan.expected_g, rel=1e-9, abs=1e-9)


def test_a_window_on_a_grid_that_starts_mid_slot_is_costed_by_the_share_of_each_slot_it_covers() -> None:
    # The operator's grid starts at each cycle's "now": 10 minutes into a 30-minute slot here.
    start = T0 + timedelta(minutes=10)
    snap = build_snapshot([RegionSignals("a", start, SLOT, np.array([100.0, 200.0, 300.0, 400.0]))])
    window = [(T0 + SLOT, T0 + 3 * SLOT)]  # one hour from T0+30 min: 1/3 of slot 0 .. 2/3 of slot 2 on this grid
    covered = grid_slots(snap, window)
    assert covered is not None
    assert covered[0] == (0, 1, 2) and covered[1] == pytest.approx((1 / 3, 1.0, 2 / 3))
    # 1000 W for 10 min at 100, 30 min at 200, 20 min at 300 g/kWh
    assert window_cost_g(snap, "a", window, 1000.0) == pytest.approx(100 / 6 + 100 + 100)


@pytest.mark.parametrize("case", ["unknown-region", "before-the-grid", "past-the-grid", "unknown-intensity"])
def test_a_window_not_on_the_current_grid_has_no_current_cost(case: str) -> None:
    values = np.array([100.0, 200.0, np.nan if case == "unknown-intensity" else 300.0, 400.0])
    snap = build_snapshot([RegionSignals("a", T0, SLOT, values)])
    begin = {"before-the-grid": T0 - SLOT, "past-the-grid": T0 + 3 * SLOT}.get(case, T0 + SLOT)
    region = "b" if case == "unknown-region" else "a"
    assert window_cost_g(snap, region, [(begin, begin + 2 * SLOT)], 1000.0) is None


def test_on_site_energy_promised_to_other_plans_is_not_counted_twice() -> None:
    # Solar covers one 1000 W job in slots 0-1: a plan holding it leaves the re-costed window on the grid.
    snap = build_snapshot([RegionSignals("a", T0, SLOT, np.array([200.0, 200.0, 300.0]), solar_w=np.array([1000.0, 1000.0, 0.0]))])
    first = plan_job(Job("first", T0, 2 * SLOT, T0 + 3 * SLOT, power_w=1000.0), snap)
    assert first.slots == (0, 1) and first.expected_g == 0.0
    window = [(T0, T0 + 2 * SLOT)]
    assert window_cost_g(snap, "a", window, 1000.0) == 0.0
    assert window_cost_g(snap, "a", window, 1000.0, [first]) == pytest.approx(200.0)
