"""The batch planner's fast paths return exactly the plans of the one-by-one greedy loop."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import numpy as np
from core_strategies import REGIONS, SLOT, T0
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonshift.core import Battery, BatchOrder, Capacity, Job, Plan, PlannerOptions, RegionSignals, build_snapshot, plan_jobs
from carbonshift.core.ledger import Ledger
from carbonshift.core.single import plan_with_ledger
from carbonshift.core.slots import job_window
from carbonshift.core.snapshot import Snapshot


def one_by_one(jobs: Sequence[Job], snap: Snapshot, commitments: Sequence[Plan], options: PlannerOptions, order: BatchOrder) -> list[Plan]:
    """The reference: the batch planner as first written, one ``plan_with_ledger`` per job."""
    ledger = Ledger.from_commitments(snap, commitments)
    indices = list(range(len(jobs)))
    if order is BatchOrder.LEAST_SLACK:
        def key(i: int) -> tuple[int, object, str]:
            window = job_window(jobs[i], snap.start, snap.slot, options)
            return (window.latest_start - window.earliest, jobs[i].deadline, jobs[i].id)
        indices.sort(key=key)
    plans: dict[int, Plan] = {}
    for i in indices:
        plans[i] = plan_with_ledger(jobs[i], snap, ledger, options)
        ledger.add(plans[i])
    return [plans[i] for i in range(len(jobs))]


@st.composite
def regions(draw: st.DrawFn, limited: bool, onsite: bool) -> list[RegionSignals]:
    """Few distinct intensities (many exact ties), sometimes unknown (NaN) slots."""
    n = draw(st.integers(3, 14))
    out = []
    for name in REGIONS[: draw(st.integers(1, len(REGIONS)))]:
        values = draw(st.lists(st.sampled_from([50.0, 100.0, 100.0, 150.0, 333.0, np.nan]), min_size=n, max_size=n))
        capacity = Capacity()
        if limited:
            capacity = Capacity(max_concurrent_jobs=draw(st.none() | st.integers(0, 3)),
                                power_budget_w=draw(st.none() | st.sampled_from([500.0, 1500.0, 3000.0])))
        solar = battery = None
        if onsite and draw(st.booleans()):
            solar = np.array(draw(st.lists(st.sampled_from([0.0, 300.0, 1200.0]), min_size=n, max_size=n)))
        if onsite and draw(st.booleans()):
            battery = Battery(2000.0, draw(st.sampled_from([0.3, 0.9])), 0.2, draw(st.sampled_from([400.0, float("inf")])))
        pue = draw(st.sampled_from([1.0, 1.0, 1.3]))
        out.append(RegionSignals(name, T0, SLOT, np.array(values), solar_w=solar, battery=battery, capacity=capacity, pue=pue))
    return out


@st.composite
def batch(draw: st.DrawFn, n_slots: int) -> list[Job]:
    jobs = []
    for k in range(draw(st.integers(1, 10))):
        minutes = draw(st.sampled_from([10, 30, 45, 60, 90, 150]))
        # Known bug, not exercised here: an interruptible job whose run would cross the end of
        # the horizon raises IndexError in plan_with_ledger when run_now_below_g_per_kwh is set.
        interruptible = draw(st.booleans()) and draw(st.booleans())
        submit = draw(st.integers(0, n_slots - 2))
        deadline = draw(st.integers(submit, n_slots if interruptible else n_slots + 2))
        jobs.append(Job(
            f"j{k}", T0 + SLOT * submit + timedelta(minutes=draw(st.sampled_from([0, 0, 7]))), timedelta(minutes=minutes),
            T0 + SLOT * deadline,
            power_w=draw(st.sampled_from([100.0, 500.0, 500.0, 1000.0])),
            allowed_regions=tuple(draw(st.lists(st.sampled_from((*REGIONS, "zz")), max_size=2, unique=True))),
            home_region=draw(st.sampled_from((*REGIONS, None))),
            interruptible=interruptible,
        ))
    return jobs


OPTIONS = st.builds(
    PlannerOptions,
    safety_margin_fraction=st.sampled_from([0.0, 0.0, 0.5]),
    forecast_error_fraction=st.sampled_from([0.0, 0.0, 0.1, 0.5]),
    run_now_below_g_per_kwh=st.sampled_from([None, None, 100.0]),
)


def check_same(data: st.DataObject, limited: bool, onsite: bool) -> None:
    signals = data.draw(regions(limited, onsite))
    snap = build_snapshot(signals)
    jobs = data.draw(batch(snap.n_slots))
    options = data.draw(OPTIONS)
    order = data.draw(st.sampled_from(BatchOrder))
    commitments = one_by_one(data.draw(batch(snap.n_slots)), snap, (), options, order) if data.draw(st.booleans()) else []
    expected = one_by_one(jobs, snap, commitments, options, order)
    # repr: exact floats (17 digits round-trip) and NaN equal to NaN
    assert repr(plan_jobs(jobs, snap, commitments, options, order)) == repr(expected)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_batch_equals_one_by_one_unlimited(data: st.DataObject) -> None:
    check_same(data, limited=False, onsite=False)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_batch_equals_one_by_one_capacity_limited(data: st.DataObject) -> None:
    check_same(data, limited=True, onsite=False)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_batch_equals_one_by_one_with_solar_and_battery(data: st.DataObject) -> None:
    check_same(data, limited=data.draw(st.booleans()), onsite=True)


def test_benchmark_shaped_batch_equals_one_by_one() -> None:
    """Longer horizon, many jobs competing for capacity: most fast-path guesses get re-planned."""
    rng = np.random.default_rng(7)
    n = 96
    signals = [RegionSignals(name, T0, SLOT, 300 + 100 * np.sin(np.arange(n) / 8 + i) + rng.normal(0, 20, n),
                             capacity=Capacity(max_concurrent_jobs=6, power_budget_w=4000.0)) for i, name in enumerate(REGIONS)]
    jobs = []
    for k in range(300):
        submit = int(rng.integers(0, n // 2))
        need = int(rng.integers(1, 12))
        end = int(rng.integers(submit + need, n + 1))
        jobs.append(Job(f"j{k}", T0 + SLOT * submit, SLOT * need, T0 + SLOT * end, power_w=float(rng.integers(100, 1000)),
                        home_region=REGIONS[k % len(REGIONS)]))
    unlimited = build_snapshot([RegionSignals(s.region, T0, SLOT, s.intensity_g_per_kwh) for s in signals])
    limited = build_snapshot(signals)
    for options in (PlannerOptions(), PlannerOptions(forecast_error_fraction=0.1), PlannerOptions(forecast_error_fraction=0.3, run_now_below_g_per_kwh=220.0)):
        free = plan_jobs(jobs, unlimited, options=options)
        assert repr(free) == repr(one_by_one(jobs, unlimited, (), options, BatchOrder.LEAST_SLACK))
        tight = plan_jobs(jobs, limited, options=options)
        assert repr(tight) == repr(one_by_one(jobs, limited, (), options, BatchOrder.LEAST_SLACK))
        assert repr(tight) != repr(free)  # the limits bind
