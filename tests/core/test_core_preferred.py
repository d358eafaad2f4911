"""A job's preferred start: "not shifting" means starting there, and equal costs go to it.

A nightly job at 01:00 is known the evening before: it is submitted hours ahead of its usual
start. Without a preferred start the core's "not shifting" is the earliest start (the evening), so
a flat or uninformative forecast moved such jobs away from the time they would have run anyway.
"""

from __future__ import annotations

from datetime import timedelta
from fractions import Fraction

import numpy as np
from carbonshift.core import BatchOrder, Job, PlannerOptions, ReasonCode, RegionSignals, plan_job, plan_jobs
from carbonshift.core.uncertainty import LeadErrors, condition
from hypothesis import given, settings
from hypothesis import strategies as st

from test_core_ties import SLOT, T0, _slot, intensities, piecewise_constant


@st.composite
def jobs_with_preferred_start(draw: st.DrawFn, n_slots: int, job_id: str = "j", interruptible: bool = False) -> Job:
    minutes = draw(st.sampled_from([30, 45, 60, 90, 240, 600]))
    need = -(-minutes // 30)
    submit = draw(st.integers(0, max(0, n_slots - need - 1)))
    latest_end = draw(st.integers(submit + need + 1, n_slots))
    preferred = draw(st.integers(submit + 1, latest_end - need))
    return Job(job_id, T0 + SLOT * submit, timedelta(minutes=minutes), T0 + SLOT * latest_end,
               power_w=draw(st.sampled_from([1000.0, 250.0, 333.3])), home_region="a", interruptible=interruptible,
               preferred_start=T0 + SLOT * preferred)


@settings(deadline=None, max_examples=80)
@given(intensities, st.integers(60, 300), st.data())
def test_constant_forecast_starts_exactly_at_the_preferred_start(value: float, n_slots: int, data: st.DataObject) -> None:
    job = data.draw(jobs_with_preferred_start(n_slots, interruptible=data.draw(st.booleans())))
    plan = plan_job(job, [RegionSignals("a", T0, SLOT, np.full(n_slots, value))])
    assert plan.start == job.preferred_start
    assert plan.slots == tuple(range(_slot(job.preferred_start), _slot(job.preferred_start) + len(plan.slots)))
    assert abs(plan.expected_g - plan.baseline_g) <= 1e-9 * plan.baseline_g  # its baseline is that run


@settings(deadline=None, max_examples=40)
@given(intensities, st.integers(60, 300), st.data())
def test_constant_forecast_batch_starts_every_job_at_its_preferred_start(value: float, n_slots: int, data: st.DataObject) -> None:
    jobs = [data.draw(jobs_with_preferred_start(n_slots, f"j{i}")) for i in range(data.draw(st.integers(1, 15)))]
    signals = [RegionSignals(r, T0, SLOT, np.full(n_slots, value)) for r in ("b", "a")]
    for order in BatchOrder:
        for job, plan in zip(jobs, plan_jobs(jobs, signals, order=order)):
            assert (plan.region, plan.start) == ("a", job.preferred_start)


def _exact_choice(values: np.ndarray, job: Job) -> int:
    """Brute force in exact arithmetic: the preferred start if its run is among the cheapest, else the earliest."""
    e, p = _slot(job.submit_at), _slot(job.preferred_start)  # type: ignore[arg-type]
    need = Fraction(job.duration / SLOT)
    whole = -(-need.numerator // need.denominator)
    last = need - (whole - 1)
    latest = _slot(job.deadline) - whole
    costs = {s: sum((Fraction(float(v)) for v in values[s:s + whole - 1]), Fraction(0)) + last * Fraction(float(values[s + whole - 1]))
             for s in range(e, min(latest, len(values) - whole) + 1)}
    best = min(costs.values())
    return p if costs.get(p) == best else min(s for s, c in costs.items() if c == best)


@settings(deadline=None, max_examples=80)
@given(st.integers(60, 300), st.data())
def test_piecewise_constant_forecast_preferred_start_among_the_cheapest(n_slots: int, data: st.DataObject) -> None:
    values = data.draw(piecewise_constant(n_slots))
    job = data.draw(jobs_with_preferred_start(n_slots))
    plan = plan_job(job, [RegionSignals("a", T0, SLOT, values)])
    assert _slot(plan.start) == _exact_choice(values, job)  # type: ignore[arg-type]


@settings(deadline=None, max_examples=30)
@given(st.integers(60, 300), st.data())
def test_piecewise_constant_batch_preferred_start_among_the_cheapest(n_slots: int, data: st.DataObject) -> None:
    values = data.draw(piecewise_constant(n_slots))
    jobs = [data.draw(jobs_with_preferred_start(n_slots, f"j{i}")) for i in range(data.draw(st.integers(1, 15)))]
    for job, plan in zip(jobs, plan_jobs(jobs, [RegionSignals("a", T0, SLOT, values)], order=BatchOrder.AS_GIVEN)):
        assert _slot(plan.start) == _exact_choice(values, job)  # type: ignore[arg-type]


@settings(deadline=None, max_examples=60)
@given(intensities, st.integers(60, 200), st.data())
def test_uncertainty_premium_pivots_at_the_preferred_start(value: float, n_slots: int, data: st.DataObject) -> None:
    """A flat forecast whose error grows (or varies) with the lead: the job still runs where it would anyway."""
    job = data.draw(jobs_with_preferred_start(n_slots))
    sigma = np.array(data.draw(st.lists(st.floats(0.0, 100.0), min_size=n_slots, max_size=n_slots)))
    window = job.duration / SLOT
    pivot = _slot(job.preferred_start)  # type: ignore[arg-type]
    planned = condition(np.full(n_slots, value), LeadErrors(np.zeros(n_slots), sigma), pivot=pivot,
                        pivot_slots=int(np.ceil(window)))
    plan = plan_job(job, [RegionSignals("a", T0, SLOT, planned)])
    assert plan.start == job.preferred_start


def test_a_clearly_greener_window_still_moves_the_job() -> None:
    values = np.full(48, 300.0)
    values[4] = 100.0
    job = Job("nightly", T0, timedelta(minutes=30), T0 + 16 * SLOT, power_w=1000.0, preferred_start=T0 + 8 * SLOT)
    plan = plan_job(job, [RegionSignals("a", T0, SLOT, values)])
    assert plan.start == T0 + 4 * SLOT
    assert plan.baseline_g == 150.0  # 30 min at 1 kW at 300 g/kWh: the run from its preferred start
    assert "preferred start" in plan.reasons[0].message


def test_forecast_error_margin_falls_back_to_the_preferred_start() -> None:
    values = np.full(48, 300.0)
    values[2] = 290.0  # 3% better than the preferred slot: below a 5% margin
    job = Job("nightly", T0, timedelta(minutes=30), T0 + 16 * SLOT, power_w=1000.0, preferred_start=T0 + 8 * SLOT)
    plan = plan_job(job, [RegionSignals("a", T0, SLOT, values)], options=PlannerOptions(forecast_error_fraction=0.05))
    assert plan.start == T0 + 8 * SLOT
    assert ReasonCode.GAIN_BELOW_FORECAST_ERROR in plan.codes


def test_a_preferred_start_at_or_before_submission_is_the_earliest_start() -> None:
    values = np.full(48, 300.0)
    for preferred in (None, T0 - SLOT, T0):
        job = Job("j", T0, timedelta(hours=1), T0 + 16 * SLOT, power_w=1000.0, preferred_start=preferred)
        assert plan_job(job, [RegionSignals("a", T0, SLOT, values)]).start == T0
