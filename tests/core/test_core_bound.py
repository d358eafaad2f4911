"""The emissions bound is a true lower bound: never above the best placement, found by brute force.

A job is either placed (one allowed region, a contiguous run or any slots of one region if
interruptible, within capacity) or not placed and charged its "run anyway" price.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import numpy as np
import pytest
from carbonshift.core import (
    BatchOrder,
    Capacity,
    Job,
    PlannerOptions,
    RegionSignals,
    plan_jobs,
)
from carbonshift.core.bound import emissions_lower_bound
from carbonshift.core.slots import job_window
from carbonshift.core.snapshot import build_snapshot
from core_strategies import SLOT, T0
from hypothesis import given, settings
from hypothesis import strategies as st

REGIONS = ("a", "b")


@st.composite
def instances(draw: st.DrawFn) -> tuple[list[Job], list[RegionSignals], list[float]]:
    n = draw(st.integers(3, 6))  # few slots for several jobs: capacity binds often
    regions = []
    for name in REGIONS[: draw(st.integers(1, 2))]:
        values = np.array(draw(st.lists(st.integers(10, 500), min_size=n, max_size=n)), dtype=float)
        regions.append(RegionSignals(name, T0, SLOT, values, capacity=Capacity(max_concurrent_jobs=draw(st.sampled_from([None, 1, 1, 2])))))
    names = tuple(r.region for r in regions)
    jobs, unplaced = [], []
    for i in range(draw(st.integers(2, 3))):
        need = draw(st.integers(1, 3))
        submit = draw(st.integers(0, n - need))
        end = draw(st.integers(submit + need, n))
        jobs.append(Job(f"j{i}", T0 + SLOT * submit, SLOT * need, T0 + SLOT * end, power_w=1000.0,
                        allowed_regions=tuple(draw(st.lists(st.sampled_from(names), min_size=1, unique=True))),
                        home_region=names[0], interruptible=draw(st.booleans())))
        unplaced.append(float(draw(st.integers(0, 1000))))
    return jobs, regions, unplaced


def _options(job: Job, regions: list[RegionSignals]) -> list[tuple[str, tuple[int, ...], float]]:
    """Every placement of one job: (region, slots, grams)."""
    w = job_window(job, T0, SLOT, PlannerOptions())
    out = []
    for sig in regions:
        if sig.region not in job.allowed_regions:
            continue
        cost = sig.intensity_g_per_kwh * job.it_power_w * sig.slot_hours / 1000.0
        limit = min(w.slot_limit, sig.n_slots)
        if job.interruptible:
            runs = itertools.combinations(range(w.earliest, limit), w.n_slots)
        else:
            runs = (tuple(range(s, s + w.n_slots)) for s in range(w.earliest, w.latest_start + 1))
        out += [(sig.region, run, float(cost[list(run)].sum())) for run in runs]
    return out


def _brute_force(jobs: list[Job], regions: list[RegionSignals], unplaced: list[float]) -> float:
    caps = {r.region: r.capacity.max_concurrent_jobs for r in regions}
    choices = [[None, *_options(j, regions)] for j in jobs]
    best = float("inf")
    for combo in itertools.product(*choices):
        used: dict[tuple[str, int], int] = {}
        total = 0.0
        for job_unplaced, choice in zip(unplaced, combo):
            if choice is None:
                total += job_unplaced
                continue
            region, run, grams = choice
            total += grams
            for t in run:
                used[(region, t)] = used.get((region, t), 0) + 1
        if all(caps[r] is None or count <= caps[r] for (r, _), count in used.items()):
            best = min(best, total)
    return best


@settings(deadline=None, max_examples=120)
@given(instances())
def test_bound_is_at_most_the_best_placement(case: tuple[list[Job], list[RegionSignals], list[float]]) -> None:
    jobs, regions, unplaced = case
    optimum = _brute_force(jobs, regions, unplaced)
    bound = emissions_lower_bound(jobs, regions, unplaced)
    assert bound.grams <= optimum + 1e-6 * max(1.0, optimum)
    if bound.exact:
        assert bound.grams == pytest.approx(optimum, rel=1e-9, abs=1e-9)


@settings(deadline=None, max_examples=60)
@given(instances())
def test_greedy_plan_is_never_below_the_bound(case: tuple[list[Job], list[RegionSignals], list[float]]) -> None:
    jobs, regions, unplaced = case
    plans = plan_jobs(jobs, regions, order=BatchOrder.AS_GIVEN)
    greedy = sum(p.expected_g if p.feasible and p.region else u for p, u in zip(plans, unplaced))
    bound = emissions_lower_bound(jobs, regions, unplaced, upper_g=greedy)
    assert bound.grams <= greedy + 1e-6 * max(1.0, greedy)


def test_without_capacity_limits_the_bound_is_each_job_at_its_cheapest() -> None:
    values = np.array([300, 100, 100, 400, 50, 500], dtype=float)
    jobs = [Job(f"j{i}", T0, SLOT * 2, T0 + SLOT * 6, power_w=1000.0) for i in range(5)]
    bound = emissions_lower_bound(jobs, [RegionSignals("a", T0, SLOT, values)], [1e9] * 5)
    assert bound.exact and bound.iterations == 1
    assert bound.grams == pytest.approx(5 * (100 + 100) * 0.5)


def test_capacity_forces_work_into_dearer_slots_or_unplaced() -> None:
    """One job at a time: two 1-slot jobs cannot both take the cheap slot; the bound knows it."""
    values = np.array([100, 400], dtype=float)
    sig = RegionSignals("a", T0, SLOT, values, capacity=Capacity(max_concurrent_jobs=1))
    jobs = [Job(f"j{i}", T0, SLOT, T0 + SLOT * 2, power_w=1000.0) for i in range(2)]
    bound = emissions_lower_bound(jobs, [sig], [1e9, 1e9], upper_g=250.0, max_iterations=500)
    assert bound.grams == pytest.approx(250.0, rel=1e-3)  # 50 g + 200 g: the LP bound is tight here
    assert bound.grams <= 250.0 + 1e-9


def test_solar_snapshots_are_refused() -> None:
    sig = RegionSignals("a", T0, SLOT, np.full(4, 100.0), solar_w=np.full(4, 500.0))
    with pytest.raises(ValueError, match="solar"):
        emissions_lower_bound([Job("j", T0, SLOT, T0 + SLOT * 4, power_w=1000.0)], [sig], [0.0])


def test_a_job_that_cannot_run_is_charged_its_unplaced_price() -> None:
    """Zero slack off the grid (submitted mid-slot, deadline = submit + duration): only "run anyway" remains."""
    sig = RegionSignals("a", T0, SLOT, np.full(6, 100.0))
    submit = T0 + SLOT / 2
    job = Job("j", submit, SLOT, submit + SLOT, power_w=1000.0)
    assert build_snapshot([sig]).n_slots == 6
    bound = emissions_lower_bound([job], [sig], [77.0])
    assert bound.grams == pytest.approx(77.0)
    assert timedelta(0) < job.deadline - job.submit_at
