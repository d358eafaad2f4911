"""Plan many jobs that share capacity, solar surplus and battery energy: the greedy heuristic.

Why this module exists: with shared capacity, placing non-interruptible jobs optimally is an
integer problem (NP-hard in general), so the batch planner is a heuristic: jobs are planned one
at a time with ``plan_with_ledger`` (each placement optimal given the earlier ones) and each plan
is added to the ledger before the next job. ``BatchOrder.LEAST_SLACK`` plans the jobs with the
least freedom first (slack = latest start - earliest start), then earliest deadline, then id, so
tight jobs are not starved by flexible ones. ``BatchOrder.AS_GIVEN`` keeps the caller's order
(online arrival order in the simulator). For interruptible work sharing resources, the optimal
LP in ``carbonshift.core.flow`` is available.

Speed (same plans as the one-by-one loop, checked by a property test): when the snapshot has no
on-site solar or battery, a job's cost per slot depends only on its power, so the search over
(region, start) of every ordinary non-interruptible job is done up front for all jobs at once
(``windows.best_window_starts``, bit-for-bit the single-job arithmetic). Without capacity limits
that is the answer. With capacity limits the greedy loop still runs in order, but a job keeps its
precomputed decision when the runs that decision depends on (chosen, greenest, cheapest) still
fit in the ledger: capacity only removes candidates, so the choice and its reasons cannot change.
Otherwise the job is re-planned by the single-job planner against the ledger. Anything unusual
(interruptible, a preferred start, deadline near, no signal, no allowed region, solar or battery)
takes the one-by-one path.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import Enum

import numpy as np

from carbonshift.core.energy import SlotEnergy, slot_energy
from carbonshift.core.ledger import Ledger
from carbonshift.core.model import Job, PlannerOptions, RegionSignals
from carbonshift.core.plan import Plan
from carbonshift.core.single import (
    choose_contiguous,
    finish,
    greenest_start,
    make_context,
    plan_in_context,
    plan_with_ledger,
)
from carbonshift.core.slots import JobWindow, job_window
from carbonshift.core.snapshot import Snapshot, build_snapshot
from carbonshift.core.windows import best_window_starts


class BatchOrder(str, Enum):
    LEAST_SLACK = "LeastSlack"
    AS_GIVEN = "AsGiven"


def plan_jobs(
    jobs: Sequence[Job],
    regions: Sequence[RegionSignals] | Snapshot,
    commitments: Iterable[Plan] = (),
    options: PlannerOptions = PlannerOptions(),
    order: BatchOrder = BatchOrder.LEAST_SLACK,
) -> list[Plan]:
    """Plan ``jobs`` greedily; returns plans in the order of ``jobs``."""
    snapshot = regions if isinstance(regions, Snapshot) else build_snapshot(regions)
    ledger = Ledger.from_commitments(snapshot, commitments)
    windows = [job_window(job, snapshot.start, snapshot.slot, options) for job in jobs]
    indices = list(range(len(jobs)))
    if order is BatchOrder.LEAST_SLACK:
        indices.sort(key=lambda i: (windows[i].latest_start - windows[i].earliest, jobs[i].deadline, jobs[i].id))
    fast = _Precomputed(jobs, windows, snapshot, ledger, options)
    plans: list[Plan | None] = [None] * len(jobs)
    for i in indices:
        plan = fast.plan(i)
        if plan is None:
            plan = plan_with_ledger(jobs[i], snapshot, ledger, options)
        ledger.add(plan)
        plans[i] = plan
    return [p for p in plans if p is not None]


class _Precomputed:
    """The best contiguous run of every eligible job, searched for all jobs at once."""

    def __init__(self, jobs: Sequence[Job], windows: list[JobWindow], snap: Snapshot, ledger: Ledger, options: PlannerOptions) -> None:
        self.jobs, self.windows, self.snap, self.ledger, self.options = jobs, windows, snap, ledger, options
        self.limited = snap.has_capacity_limits
        self.slot_of: dict[int, int] = {}  # job index -> row in the arrays below
        if snap.has_solar or snap.has_battery or not jobs:
            return  # shared on-site energy: every job's costs depend on the earlier ones
        self.energy: dict[str, SlotEnergy] = {}  # by power (as float.hex(): exact, tells -0.0 apart)
        self.allowed: dict[tuple[str, ...], np.ndarray] = {}
        rows: list[int] = []
        power_index: dict[str, int] = {}
        which, first, n_slots, fraction, n_starts, allowed = [], [], [], [], [], []
        n = snap.n_slots
        for i, (job, w) in enumerate(zip(jobs, windows)):
            if job.interruptible or w.preferred is not None or w.latest_start < w.earliest:
                continue  # a preferred start changes the tie-break: the single-job planner decides
            span = min(n, w.latest_start + w.n_slots) - w.earliest
            if span < w.n_slots:
                continue
            mask = self._allowed(job)
            if not mask.any():
                continue
            power = job.it_power_w
            key = power.hex()
            if key not in power_index:
                power_index[key] = len(power_index)
                self.energy[key] = slot_energy(power, snap.pue, snap.solar_w, snap.intensity, snap.slot_hours)
            self.slot_of[i] = len(rows)
            rows.append(i)
            which.append(power_index[key])
            first.append(w.earliest)
            n_slots.append(w.n_slots)
            fraction.append(w.last_fraction)
            n_starts.append(span - w.n_slots + 1)
            allowed.append(mask)
        if not rows:
            return
        cost = np.stack([e.cost_g for e in self.energy.values()])
        self.starts, self.best, self.cost0, self.valid0, self.row_valid = best_window_starts(
            cost, np.array(which), np.array(first), np.array(n_slots), np.array(fraction), np.array(n_starts),
            np.array(allowed))
        self.n_starts = n_starts

    def _allowed(self, job: Job) -> np.ndarray:
        mask = self.allowed.get(job.allowed_regions)
        if mask is None:
            mask = np.array([not job.allowed_regions or name in job.allowed_regions for name in self.snap.regions])
            self.allowed[job.allowed_regions] = mask
        return mask

    def plan(self, i: int) -> Plan | None:
        """Job ``i``'s plan given the ledger now, or ``None`` when it needs ``plan_with_ledger``."""
        row = self.slot_of.get(i)
        if row is None:
            return None
        job, w = self.jobs[i], self.windows[i]
        power = job.it_power_w
        ctx = make_context(job, self.snap, self.ledger, self.options, w, self._allowed(job), self.energy[power.hex()])
        if not self.row_valid[row].any():
            return plan_in_context(ctx)  # no signal: the fallbacks decide
        starts, best = self.starts[row], self.best[row]
        now_ok, now_cost = bool(self.valid0[row, ctx.home]), float(self.cost0[row, ctx.home])
        checked: set[tuple[int, int]] = set()
        if self.limited:
            # Capacity only removes candidates, so the decision stands if these runs still fit:
            # the greenest one (what the forecast-error rule compares against), the cheapest one
            # (its cost is what the rule compares; it differs from the greenest only when the home
            # region wins a near-tie) and, below, the one chosen. Otherwise: re-plan this job.
            _, (g, offset) = greenest_start(ctx, starts, best)
            cheapest = int(best.argmin())
            checked = {(g, w.earliest + offset), (cheapest, w.earliest + int(starts[cheapest]))}
            if any(self.ledger.would_overflow(region, start, start + w.n_slots, power) for region, start in checked):
                return plan_in_context(ctx)
        r, slots, fractions, reasons = choose_contiguous(ctx, starts, best, now_ok, now_cost, self.n_starts[row])
        start = int(slots[0])
        if self.limited and (r, start) not in checked and self.ledger.would_overflow(r, start, start + w.n_slots, power):
            return plan_in_context(ctx)
        return finish(ctx, r, slots, fractions, reasons)
