"""Ties go to the earliest start, exactly, as core/single.py documents.

Floating-point prefix sums made equal windows differ in their last bits: on a constant forecast
of 208.53 g/kWh most ML jobs were delayed for nothing (at 250 g/kWh none were). These properties
hold on any constant forecast and on piecewise-constant ones, for one job and for a batch.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from fractions import Fraction

import numpy as np
from carbonshift.core import (
    BatchOrder,
    Job,
    ReasonCode,
    RegionSignals,
    plan_job,
    plan_jobs,
)
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = datetime(2021, 3, 1, tzinfo=timezone.utc)
SLOT = timedelta(minutes=30)

# any positive intensity, not only "round" binary fractions such as 250.0
intensities = st.floats(min_value=0.5, max_value=2000.0, allow_nan=False, allow_infinity=False)


@st.composite
def contiguous_jobs(draw: st.DrawFn, n_slots: int, job_id: str = "j") -> Job:
    minutes = draw(st.sampled_from([30, 45, 60, 90, 240, 600, 1470, 2970]))
    need = -(-minutes // 30)
    submit = draw(st.integers(0, max(0, n_slots - need)))
    latest_end = draw(st.integers(submit + need, n_slots))
    return Job(job_id, T0 + SLOT * submit, timedelta(minutes=minutes), T0 + SLOT * latest_end,
               power_w=draw(st.sampled_from([1000.0, 250.0, 333.3])), home_region="a")


def _slot(moment: datetime) -> int:
    return round((moment - T0) / SLOT)


@settings(deadline=None, max_examples=80)
@given(intensities, st.integers(100, 400), st.data())
def test_constant_forecast_runs_at_once(value: float, n_slots: int, data: st.DataObject) -> None:
    job = data.draw(contiguous_jobs(n_slots))
    plan = plan_job(job, [RegionSignals("a", T0, SLOT, np.full(n_slots, value))])
    assert plan.start == job.submit_at
    assert ReasonCode.DELAYED_TO_GREENER_WINDOW not in plan.codes


@settings(deadline=None, max_examples=40)
@given(intensities, st.integers(100, 400), st.data())
def test_constant_forecast_batch_runs_every_job_at_once_at_home(value: float, n_slots: int, data: st.DataObject) -> None:
    jobs = [data.draw(contiguous_jobs(n_slots, f"j{i}")) for i in range(data.draw(st.integers(1, 25)))]
    # two regions with the same constant: the home region and the earliest start win
    signals = [RegionSignals(r, T0, SLOT, np.full(n_slots, value)) for r in ("b", "a")]
    jobs = [Job(j.id, j.submit_at, j.duration, j.deadline, power_w=j.power_w, home_region="a") for j in jobs]
    for order in BatchOrder:
        for job, plan in zip(jobs, plan_jobs(jobs, signals, order=order)):
            assert (plan.region, plan.start) == ("a", job.submit_at)


@st.composite
def piecewise_constant(draw: st.DrawFn, n_slots: int) -> np.ndarray:
    # a few distinct levels (cents of g/kWh, like published data), each held for a run of slots
    levels = draw(st.lists(st.integers(1000, 60000).map(lambda c: c / 100), min_size=1, max_size=4))
    values: list[float] = []
    while len(values) < n_slots:
        values += [draw(st.sampled_from(levels))] * draw(st.integers(1, 40))
    return np.array(values[:n_slots])


def _exact_cheapest_earliest(values: np.ndarray, job: Job) -> int:
    """Brute force in exact arithmetic: the earliest start of the cheapest window."""
    e = _slot(job.submit_at)
    need = Fraction(job.duration / SLOT)
    whole = -(-need.numerator // need.denominator)
    last = need - (whole - 1)
    latest = _slot(job.deadline) - whole
    costs = {s: sum((Fraction(float(v)) for v in values[s:s + whole - 1]), Fraction(0)) + last * Fraction(float(values[s + whole - 1]))
             for s in range(e, min(latest, len(values) - whole) + 1)}
    best = min(costs.values())
    return min(s for s, c in costs.items() if c == best)


@settings(deadline=None, max_examples=80)
@given(st.integers(100, 300), st.data())
def test_piecewise_constant_forecast_earliest_of_the_cheapest(n_slots: int, data: st.DataObject) -> None:
    values = data.draw(piecewise_constant(n_slots))
    job = data.draw(contiguous_jobs(n_slots))
    plan = plan_job(job, [RegionSignals("a", T0, SLOT, values)])
    assert _slot(plan.start) == _exact_cheapest_earliest(values, job)


@settings(deadline=None, max_examples=30)
@given(st.integers(100, 300), st.data())
def test_piecewise_constant_batch_earliest_of_the_cheapest(n_slots: int, data: st.DataObject) -> None:
    values = data.draw(piecewise_constant(n_slots))
    jobs = [data.draw(contiguous_jobs(n_slots, f"j{i}")) for i in range(data.draw(st.integers(1, 25)))]
    plans = plan_jobs(jobs, [RegionSignals("a", T0, SLOT, values)], order=BatchOrder.AS_GIVEN)
    for job, plan in zip(jobs, plans):
        assert _slot(plan.start) == _exact_cheapest_earliest(values, job)
