"""A lower bound on the emissions of any placement under capacity limits (Lagrangian relaxation).

Why this module exists: with capacity limits the batch planner is a greedy heuristic, and "the
same planner fed actual values" is not the best possible plan (a plan on a noisy forecast can beat
it). To say how far a plan can be from optimal we need a number no plan can go below.

The problem bounded: every job either runs in one allowed (region, start) of its window, holding
one of the region's ``max_concurrent_jobs`` in each slot it touches, or is *not placed* and charged
``unplaced_g[j]`` (the caller's price of running it anyway, e.g. at submission in its home region:
the work still has to happen). Dualising the capacity constraints with multipliers ``λ[r, t] ≥ 0``
(grams per job-slot) splits it into one tiny problem per job:

    L(λ) = Σ_j min(unplaced_g[j], min over runs of [cost of the run + Σ λ over its slots])
           - Σ λ[r, t] × capacity[r, t]

and every ``L(λ)`` is ≤ the optimum (weak duality); its maximum over ``λ`` equals the bound of the
LP relaxation over whole runs, which is tighter than relaxing jobs to be interruptible. ``λ`` is
improved by projected subgradient steps (Polyak step towards ``upper_g``, a known feasible total
such as the greedy plan's); the best ``L`` seen is returned, so stopping early only loosens it.

Relaxed on purpose, which keeps it a valid lower bound: power budgets are left out, and a run's
last, partly used slot counts ``last_fraction`` of a job against capacity. Runs follow the
planner's own rules (``job_window``: safety margin, the no-margin run now when only the margin
makes the window empty; interruptible work in any slots of one region). Solar and batteries are
not modelled: such snapshots are refused.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from carbonshift.core.energy import slot_energy
from carbonshift.core.model import FloatArray, Job, PlannerOptions, RegionSignals
from carbonshift.core.slots import JobWindow, job_window
from carbonshift.core.snapshot import Snapshot, build_snapshot


@dataclass(frozen=True)
class Bound:
    """``grams``: no placement emits less. ``exact``: capacity never binds, so it is the optimum."""

    grams: float
    iterations: int
    exact: bool


def emissions_lower_bound(
    jobs: Sequence[Job],
    regions: Sequence[RegionSignals] | Snapshot,
    unplaced_g: Sequence[float],
    options: PlannerOptions = PlannerOptions(),
    upper_g: float | None = None,
    max_iterations: int = 150,
    tolerance: float = 1e-4,
) -> Bound:
    """Lower bound on total gCO2eq of ``jobs`` (see the module docstring).

    ``unplaced_g[j]``: what job ``j`` costs if it is not placed (``inf``: it must be placed).
    ``upper_g``: a feasible total (e.g. the greedy plan's, unplaced jobs at ``unplaced_g``) that
    steers the step size and stops the search once the bound is within ``tolerance`` of it.
    """
    snap = regions if isinstance(regions, Snapshot) else build_snapshot(regions)
    if snap.has_solar or snap.has_battery:
        raise ValueError("the emissions bound does not model on-site solar or batteries")
    if len(unplaced_g) != len(jobs):
        raise ValueError("unplaced_g needs one value per job")
    problem = _Problem(jobs, snap, np.asarray(unplaced_g, dtype=np.float64), options)
    capacity = np.where(np.isfinite(snap.max_jobs), snap.max_jobs, 0.0)[:, None] * np.ones((1, snap.n_slots))
    limited = np.isfinite(snap.max_jobs)
    lam = np.zeros(snap.intensity.shape)
    best = -np.inf
    theta, stale, iterations = 1.0, 0, 0
    for iterations in range(1, max_iterations + 1):
        value, usage = problem.solve(lam)
        value -= float((lam * capacity).sum())
        excess = np.where(limited[:, None], usage - capacity, 0.0)
        if not np.isfinite(best) or value > best + 1e-12 * max(1.0, abs(best)):
            best, stale = value, 0
        else:
            stale += 1
            if stale >= 8:
                theta, stale = theta / 2.0, 0
        if not limited.any() or ((excess <= 1e-9).all() and float((lam * -excess).sum()) <= 1e-9 * max(1.0, abs(value))):
            return Bound(grams=value, iterations=iterations, exact=True)  # feasible and complementary: optimal
        if upper_g is not None and upper_g - best <= tolerance * max(1.0, abs(upper_g)):
            break
        direction = np.where((lam > 0) | (excess > 0), excess, 0.0)
        norm = float((direction * direction).sum())
        if norm <= 0 or theta < 1e-3:
            break
        target = upper_g if upper_g is not None and upper_g > value else value * (1.0 + 1e-3) + 1.0
        lam = np.maximum(0.0, lam + theta * (target - value) / norm * direction)
    return Bound(grams=best, iterations=iterations, exact=False)


class _Problem:
    """The per-job subproblems, vectorised over jobs (contiguous) or looped (interruptible)."""

    def __init__(self, jobs: Sequence[Job], snap: Snapshot, unplaced: FloatArray, options: PlannerOptions) -> None:
        self.snap, self.unplaced = snap, unplaced
        n, n_regions = snap.n_slots, len(snap.regions)
        self.cost: dict[float, FloatArray] = {}  # by IT power: (R, n) grams of a full slot, NaN unknown
        self.contiguous: list[tuple[int, int, int, int, float, FloatArray]] = []  # job, first, starts, slots, frac, allowed
        self.interruptible: list[tuple[int, int, int, int, float, FloatArray]] = []  # job, first, limit, slots, frac, allowed
        for j, job in enumerate(jobs):
            power = job.it_power_w
            if power not in self.cost:
                self.cost[power] = slot_energy(power, snap.pue, snap.solar_w, snap.intensity, snap.slot_hours).cost_g
            allowed = np.array([not job.allowed_regions or r in job.allowed_regions for r in snap.regions])
            w = job_window(job, snap.start, snap.slot, options)
            if job.interruptible and w.slot_limit - w.earliest >= w.n_slots:
                self.interruptible.append((j, w.earliest, min(w.slot_limit, n), w.n_slots, w.last_fraction, allowed))
                continue
            first, last = _starts(w)
            last = min(last, n - w.n_slots)
            if last >= first and allowed.any():
                self.contiguous.append((j, first, last - first + 1, w.n_slots, w.last_fraction, allowed))
        self.n_regions = n_regions
        self.powers = [job.it_power_w for job in jobs]

    def solve(self, lam: FloatArray) -> tuple[float, FloatArray]:
        """Σ_j of each job's cheapest option under multipliers ``lam``, and the usage it implies."""
        snap = self.snap
        best = self.unplaced.copy()
        diff = np.zeros((self.n_regions, snap.n_slots + 1))
        usage_slots = np.zeros(snap.intensity.shape)
        by_power: dict[float, list[int]] = {}
        for k, (j, *_rest) in enumerate(self.contiguous):
            by_power.setdefault(self.powers[j], []).append(k)
        for power, ks in by_power.items():
            self._contiguous(power, ks, lam, best, diff)
        for j, first, limit, d, frac, allowed in self.interruptible:
            self._interruptible(j, first, limit, d, frac, allowed, lam, best, usage_slots)
        usage = np.cumsum(diff, axis=1)[:, :-1] + usage_slots
        finite = np.isfinite(best)
        if not finite.all():
            raise ValueError(f"{int((~finite).sum())} jobs can neither be placed nor left unplaced")
        return float(best.sum()), usage

    def _contiguous(self, power: float, ks: list[int], lam: FloatArray, best: FloatArray, diff: FloatArray) -> None:
        rows = [self.contiguous[k] for k in ks]
        cost = self.cost[power]
        unknown = np.isnan(cost)
        c = np.where(unknown, 0.0, cost) + lam
        n = c.shape[1]
        prefix = np.zeros((self.n_regions, n + 1))
        np.cumsum(c, axis=1, out=prefix[:, 1:])
        bad = np.zeros((self.n_regions, n + 1))
        np.cumsum(unknown, axis=1, out=bad[:, 1:])
        jobs = np.array([r[0] for r in rows])
        first = np.array([r[1] for r in rows])
        count = np.array([r[2] for r in rows])
        d = np.array([r[3] for r in rows])
        frac = np.array([r[4] for r in rows])
        allowed = np.array([r[5] for r in rows])  # (J, R)
        # chunks of jobs so that (J, R, starts) stays small
        order = np.argsort(count, kind="stable")
        lo = 0
        while lo < len(order):
            hi = lo
            width = 0
            while hi < len(order) and (hi - lo + 1) * max(width, int(count[order[hi]])) * self.n_regions <= 1 << 20:
                width = max(width, int(count[order[hi]]))
                hi += 1
            hi = max(hi, lo + 1)
            width = max(width, int(count[order[lo]]))
            idx = order[lo:hi]
            lo = hi
            s = first[idx][:, None] + np.arange(width)[None, :]  # (J, S) start slots
            inside = np.arange(width)[None, :] < count[idx][:, None]
            s = np.where(inside, s, first[idx][:, None])
            end = s + d[idx][:, None]  # exclusive
            sums = (prefix[:, end - 1] - prefix[:, s]
                    + frac[idx][None, :, None] * c[:, end - 1])  # (R, J, S)
            valid = (bad[:, end] - bad[:, s] == 0) & inside[None] & allowed[idx].T[:, :, None]
            sums = np.where(valid, sums, np.inf)
            flat = sums.transpose(1, 0, 2).reshape(len(idx), -1)  # (J, R*S)
            pick = np.argmin(flat, axis=1)
            value = flat[np.arange(len(idx)), pick]
            region, offset = np.divmod(pick, width)
            placed = value < best[jobs[idx]]
            best[jobs[idx]] = np.minimum(best[jobs[idx]], value)
            start = s[np.arange(len(idx)), offset]
            for r in np.unique(region[placed]):
                sel = placed & (region == r)
                np.add.at(diff[r], start[sel], 1.0)
                np.add.at(diff[r], start[sel] + d[idx][sel] - 1, frac[idx][sel] - 1.0)
                np.add.at(diff[r], start[sel] + d[idx][sel], -frac[idx][sel])

    def _interruptible(self, j: int, first: int, limit: int, d: int, frac: float, allowed: FloatArray,
                       lam: FloatArray, best: FloatArray, usage: FloatArray) -> None:
        cost = self.cost[self.powers[j]]
        choice: tuple[float, int, np.ndarray, np.ndarray] | None = None
        for r in np.flatnonzero(allowed):
            c = cost[r, first:limit] + lam[r, first:limit]
            known = np.flatnonzero(~np.isnan(c))
            if known.size < d:
                continue
            values = c[known]
            pick = np.argpartition(values, d - 1)[:d] if d < known.size else np.arange(known.size)
            chosen = values[pick]
            weights = np.ones(d)
            weights[int(np.argmax(chosen))] = frac  # the partial slot where it costs most
            total = float((chosen * weights).sum())
            if choice is None or total < choice[0]:
                choice = (total, int(r), first + known[pick], weights)
        if choice is not None and choice[0] < best[j]:
            best[j] = choice[0]
            usage[choice[1], choice[2]] += choice[3]


def _starts(w: JobWindow) -> tuple[int, int]:
    """First and last contiguous start the planner may choose (run now without margin if only the margin forbids)."""
    if w.latest_start >= w.earliest:
        return w.earliest, w.latest_start
    if w.latest_start_nomargin >= w.earliest:
        return w.earliest, w.earliest
    return w.earliest, w.earliest - 1
