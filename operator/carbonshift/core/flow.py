"""Optimal plan for interruptible jobs sharing capacity, solar surplus and a battery: an LP.

Why this module exists: when interruptible work competes for a region's capacity and on-site
energy, planning jobs one by one is not optimal. Interruptible work may run any fraction of any
slot, so the problem is a linear program (a min-cost flow with battery state added) and HiGHS
(``scipy.optimize.linprog``) solves it to optimality.

Model, per region r and slot t (hours h per slot, facility power F_j = IT power × PUE):

- x[j,t] in [0, 1]: share of slot t that job j runs; sum_t x[j,t] = duration_j / slot; only
  slots in [earliest, deadline - margin) with a known intensity. Each job runs in one region
  (by default the region the greedy planner chose; pass ``assignment`` to pin others).
- demand[r,t] = sum_j F_j x[j,t] = solar[r,t] + discharge[r,t] + grid[r,t];
  solar + charge <= solar surplus; discharge <= max discharge; charge <= max charge;
  E[r,t] = E[r,t-1] + efficiency·charge·h - discharge·h, reserve·capacity <= E <= capacity.
- sum_j x[j,t] <= free job slots, sum_j P_j x[j,t] <= free power budget.
- minimise sum grid[r,t]·h·intensity[r,t]/1000 (+ a 1e-9 tie-break towards earlier slots).

The result is optimal for the fixed region assignment. Grid, solar and battery energy of a slot
are attributed to its jobs in proportion to their demand. If the LP is infeasible (not enough
shared capacity), the greedy plans are returned unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from carbonshift.core.batch import BatchOrder, plan_jobs
from carbonshift.core.ledger import Ledger
from carbonshift.core.model import Job, PlannerOptions, RegionSignals
from carbonshift.core.plan import Plan, Reason, ReasonCode
from carbonshift.core.slots import job_window
from carbonshift.core.snapshot import Snapshot, build_snapshot


def plan_interruptible_lp(
    jobs: Sequence[Job],
    regions: Sequence[RegionSignals] | Snapshot,
    commitments: Iterable[Plan] = (),
    options: PlannerOptions = PlannerOptions(),
    assignment: Mapping[str, str] | None = None,
) -> list[Plan]:
    """Optimal (LP) plans for interruptible ``jobs``; non-interruptible ones are planned greedily first."""
    snap = regions if isinstance(regions, Snapshot) else build_snapshot(regions)
    commitments = list(commitments)
    greedy = plan_jobs(jobs, snap, commitments, options, BatchOrder.LEAST_SLACK)
    fixed = [p for j, p in zip(jobs, greedy) if not j.interruptible]
    ledger = Ledger.from_commitments(snap, [*commitments, *fixed])
    h = snap.slot_hours
    rows_var: list[tuple[int, int, int]] = []  # (job index, region, slot) per x variable
    lp_jobs: list[int] = []
    for i, (job, plan) in enumerate(zip(jobs, greedy)):
        if not job.interruptible or not plan.feasible or plan.region is None:
            continue
        region = (assignment or {}).get(job.id, plan.region)
        if region not in snap.regions:
            continue
        r = snap.index(region)
        w = job_window(job, snap.start, snap.slot, options)
        limit = min(w.slot_limit, snap.n_slots)
        ts = [t for t in range(w.earliest, limit) if not np.isnan(snap.intensity[r, t])]
        if len(ts) < job.duration / snap.slot - 1e-9:
            continue
        lp_jobs.append(i)
        rows_var.extend((i, r, t) for t in ts)
    if not lp_jobs:
        return greedy
    nx = len(rows_var)
    cells = sorted({(r, t) for _, r, t in rows_var})
    cell_index = {cell: k for k, cell in enumerate(cells)}
    nc = len(cells)
    # variable layout: x (nx) | solar (nc) | discharge (nc) | charge (nc) | grid (nc) | energy (nc)
    off_s, off_b, off_c, off_g, off_e = nx, nx + nc, nx + 2 * nc, nx + 3 * nc, nx + 4 * nc
    nvar = nx + 5 * nc
    solar_avail = ledger.solar_available_w()
    battery_left = ledger.battery_available_wh()
    cost = np.zeros(nvar)
    lower = np.zeros(nvar)
    upper = np.zeros(nvar)
    upper[:nx] = 1.0
    for k, (_, _, t) in enumerate(rows_var):
        cost[k] = 1e-9 * t
    for k, (r, t) in enumerate(cells):
        sig = snap.signals[r]
        upper[off_s + k] = solar_avail[r, t]
        cost[off_g + k] = h * snap.intensity[r, t] / 1000.0
        upper[off_g + k] = np.inf
        if sig.battery is not None:
            upper[off_b + k] = min(sig.battery.max_discharge_w, 1e12)
            upper[off_c + k] = min(sig.battery.max_charge_w, 1e12)
            reserve = sig.battery.reserve_fraction * sig.battery.capacity_wh
            lower[off_e + k] = reserve
            upper[off_e + k] = sig.battery.capacity_wh
        # energy variables of regions without battery stay fixed at 0
    eq_rows: list[int] = []
    eq_cols: list[int] = []
    eq_vals: list[float] = []
    b_eq: list[float] = []
    ub_rows: list[int] = []
    ub_cols: list[int] = []
    ub_vals: list[float] = []
    b_ub: list[float] = []

    def eq(entries: list[tuple[int, float]], rhs: float) -> None:
        row = len(b_eq)
        for col, val in entries:
            eq_rows.append(row)
            eq_cols.append(col)
            eq_vals.append(val)
        b_eq.append(rhs)

    def ub(entries: list[tuple[int, float]], rhs: float) -> None:
        row = len(b_ub)
        for col, val in entries:
            ub_rows.append(row)
            ub_cols.append(col)
            ub_vals.append(val)
        b_ub.append(rhs)

    by_job: dict[int, list[int]] = {}
    by_cell: dict[int, list[int]] = {}
    for k, (i, r, t) in enumerate(rows_var):
        by_job.setdefault(i, []).append(k)
        by_cell.setdefault(cell_index[(r, t)], []).append(k)
    for i in lp_jobs:
        eq([(k, 1.0) for k in by_job[i]], jobs[i].duration / snap.slot)
    for c, (r, t) in enumerate(cells):
        ks = by_cell[c]
        pue = float(snap.pue[r])
        # demand = solar + discharge + grid
        eq([(k, jobs[rows_var[k][0]].it_power_w * pue) for k in ks] + [(off_s + c, -1.0), (off_b + c, -1.0), (off_g + c, -1.0)], 0.0)
        ub([(off_s + c, 1.0), (off_c + c, 1.0)], float(solar_avail[r, t]))
        free_jobs = snap.max_jobs[r] - ledger.jobs[r, t]
        if np.isfinite(free_jobs):
            ub([(k, 1.0) for k in ks], float(free_jobs))
        free_power = snap.power_budget_w[r] - ledger.power_w[r, t]
        if np.isfinite(free_power):
            ub([(k, jobs[rows_var[k][0]].it_power_w) for k in ks], float(free_power))
        sig = snap.signals[r]
        if sig.battery is not None:
            prev = cell_index.get((r, t - 1))
            eff = sig.battery.charge_efficiency
            entries = [(off_e + c, 1.0), (off_c + c, -eff * h), (off_b + c, h)]
            if prev is not None:
                eq([*entries, (off_e + prev, -1.0)], 0.0)
            else:
                # first modelled slot of a run of cells: start from what is left above reserve
                start_wh = sig.battery.reserve_fraction * sig.battery.capacity_wh + float(battery_left[r])
                eq(entries, start_wh)
    # Imported here, not at module level: scipy.optimize costs ~50 MB RSS and the operator never
    # solves LPs (scipy is the optional `lp` extra, left out of the operator image).
    try:
        from scipy import sparse
        from scipy.optimize import linprog
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError("plan_interruptible_lp needs scipy: pip install 'carbonshift[lp]'",
                                  name=exc.name) from exc

    a_eq = sparse.csr_matrix((eq_vals, (eq_rows, eq_cols)), shape=(len(b_eq), nvar))
    a_ub = sparse.csr_matrix((ub_vals, (ub_rows, ub_cols)), shape=(len(b_ub), nvar)) if b_ub else None
    result = linprog(cost, A_ub=a_ub, b_ub=b_ub or None, A_eq=a_eq, b_eq=b_eq,
                     bounds=np.column_stack([lower, upper]), method="highs")
    if result.status != 0:
        return greedy
    sol = result.x
    demand = np.zeros(nc)
    for k, (i, r, t) in enumerate(rows_var):
        demand[cell_index[(r, t)]] += jobs[i].it_power_w * float(snap.pue[r]) * sol[k]
    out = list(greedy)
    for i in lp_jobs:
        ks = [k for k in by_job[i] if sol[k] > 1e-7]
        job = jobs[i]
        r = rows_var[ks[0]][1]
        pue = float(snap.pue[r])
        slots, fracs, solar_wh, batt_wh, grams = [], [], [], [], 0.0
        for k in ks:
            _, _, t = rows_var[k]
            c = cell_index[(r, t)]
            share = job.it_power_w * pue * sol[k] / demand[c] if demand[c] > 0 else 0.0
            slots.append(t)
            fracs.append(float(sol[k]))
            solar_wh.append(float(sol[off_s + c] * h * share))
            batt_wh.append(float(sol[off_b + c] * h * share))
            grams += float(sol[off_g + c] * h * share * snap.intensity[r, t] / 1000.0)
        base = greedy[i]
        reasons = [Reason(ReasonCode.SPLIT_INTO_GREEN_SLOTS, f"LP-optimal share of {len(slots)} slots with the other interruptible jobs")]
        w = job_window(job, snap.start, snap.slot, options)
        if slots[0] > w.earliest:
            reasons.append(Reason(ReasonCode.DELAYED_TO_GREENER_WINDOW, f"first slot delayed by {snap.slot * (slots[0] - w.earliest)}"))
        if snap.regions[r] != (job.home_region or base.region):
            reasons.append(Reason(ReasonCode.PLACED_IN_GREENER_REGION, f"placed in {snap.regions[r]}"))
        if sum(solar_wh) + sum(batt_wh) > 0:
            reasons.append(Reason(ReasonCode.USES_ONSITE_ENERGY, f"{sum(solar_wh):.0f} Wh solar, {sum(batt_wh):.0f} Wh battery"))
        out[i] = Plan(
            job_id=job.id, feasible=True, region=snap.regions[r], start=snap.time_of(slots[0]),
            end=snap.time_of(slots[-1] + fracs[-1]), slots=tuple(slots), slot_fractions=tuple(fracs),
            it_power_w=job.it_power_w, facility_power_w=job.it_power_w * pue, expected_g=grams,
            baseline_g=base.baseline_g, reasons=tuple(reasons), solar_wh_by_slot=tuple(solar_wh),
            battery_wh_by_slot=tuple(batt_wh), slot_start=snap.start, slot_length=snap.slot,
        )
    return out
