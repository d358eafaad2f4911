"""The LP planner for interruptible work sharing capacity, solar and a battery."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from core_strategies import SLOT, T0
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonshift.core import Battery, Capacity, Job, RegionSignals, plan_interruptible_lp, plan_jobs


def _jobs(n: int, n_slots: int, draw: st.DataObject) -> list[Job]:
    out = []
    for i in range(n):
        need = draw.draw(st.integers(1, 3))
        submit = draw.draw(st.integers(0, n_slots - need))
        end = draw.draw(st.integers(submit + need, n_slots))
        out.append(Job(f"j{i}", T0 + SLOT * submit, SLOT * need, T0 + SLOT * end, power_w=1000.0,
                       home_region="a", interruptible=True))
    return out


@settings(deadline=None, max_examples=25)
@given(st.data())
def test_lp_is_never_worse_than_greedy_and_respects_limits(data: st.DataObject) -> None:
    n = data.draw(st.integers(6, 12))
    ci = np.array(data.draw(st.lists(st.integers(20, 600), min_size=n, max_size=n)), dtype=float)
    solar = np.array(data.draw(st.lists(st.integers(0, 1500), min_size=n, max_size=n)), dtype=float)
    battery = Battery(3000, data.draw(st.floats(0.2, 1.0)), 0.2, 1000, 1000)
    region = RegionSignals("a", T0, SLOT, ci, solar_w=solar, battery=battery, capacity=Capacity(max_concurrent_jobs=2))
    jobs = _jobs(data.draw(st.integers(1, 5)), n, data)
    greedy = plan_jobs(jobs, [region])
    lp = plan_interruptible_lp(jobs, [region])
    if all(p.feasible for p in greedy):
        assert sum(p.expected_g for p in lp) <= sum(p.expected_g for p in greedy) + 1e-6
    load = np.zeros(n)
    for j, p in zip(jobs, lp):
        if not p.feasible:
            continue
        assert p.end is not None and p.end <= j.deadline
        assert sum(p.slot_fractions) == pytest.approx(j.duration / SLOT)
        for s, f in zip(p.slots, p.slot_fractions):
            load[s] += f
    assert (load <= 2 + 1e-6).all()


def test_lp_shares_a_green_slot_optimally() -> None:
    # two 30-minute jobs, one green slot with room for one job: the LP fills it and the next-best.
    ci = np.array([500, 50, 400, 300], dtype=float)
    region = RegionSignals("a", T0, SLOT, ci, capacity=Capacity(max_concurrent_jobs=1))
    jobs = [Job(f"j{i}", T0, timedelta(minutes=30), T0 + SLOT * 4, power_w=1000.0, interruptible=True) for i in range(2)]
    plans = plan_interruptible_lp(jobs, [region])
    assert sum(p.expected_g for p in plans) == pytest.approx((50 + 300) * 0.5)


def test_lp_uses_battery_within_reserve() -> None:
    ci = np.array([500, 500, 500, 500], dtype=float)
    region = RegionSignals("a", T0, SLOT, ci, battery=Battery(1000, 0.5, 0.2, 400))
    jobs = [Job("j", T0, timedelta(hours=2), T0 + SLOT * 4, power_w=1000.0, interruptible=True)]
    plan = plan_interruptible_lp(jobs, [region])[0]
    assert sum(plan.battery_wh_by_slot) == pytest.approx(300.0)  # (0.5 - 0.2) * 1000 Wh
    assert max(plan.battery_wh_by_slot) <= 400 * 0.5 + 1e-6
    assert plan.expected_g == pytest.approx((2000 - 300) * 500 / 1000)
