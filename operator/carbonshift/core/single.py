"""Plan one job against a snapshot and the resources already committed.

Why this module exists: it is the heart of the core, "best (region, start) or cheapest slots
before the deadline", with every rule that must hold for a single job: the deadline minus safety
margin is the latest end, capacity is respected, on-site energy is used before the grid, and the
fallbacks ("run now if below X", "no signal → run now", "deadline near → run now") apply.

Methods (see docs/planner.md):
- Non-interruptible: exhaustive search over every allowed (region, start) by vectorised sliding
  windows over prefix sums, O(regions × slots). With a battery, every window's battery saving is
  computed exactly (greedy fractional knapsack per window). Optimal for one job given the
  commitments.
- Interruptible: per allowed region the cheapest usable slots before the deadline (sort), the
  cheapest region wins. Optimal for one job that stays in one region.
Ties go to the home region, then the job's preferred start (``Job.preferred_start``; without one,
the earliest start), then the earliest start, then the region listed first: deterministic. The
"not shifting" alternative (the baseline, and what the forecast-error margin falls back to) is a
run from the preferred start, the earliest without one.
Costs within a relative 1e-9 of each other are ties (``windows.TIE_RTOL``): floating-point sums of
equal windows differ in their last bits, and an exact comparison would delay work for nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import timedelta

import numpy as np

from carbonshift.core.energy import SlotEnergy, allocate_battery, battery_savings_per_window, slot_energy
from carbonshift.core.ledger import Ledger
from carbonshift.core.model import Job, PlannerOptions, RegionSignals
from carbonshift.core.plan import Plan, Reason, ReasonCode
from carbonshift.core.slots import JobWindow, job_window
from carbonshift.core.snapshot import Snapshot, build_snapshot
from carbonshift.core.windows import TIE_RTOL, cheapest_slots, first_minimum, window_any, window_sums

_NO_OPTIONS = PlannerOptions()


def plan_job(
    job: Job,
    regions: Sequence[RegionSignals] | Snapshot,
    commitments: Iterable[Plan] = (),
    options: PlannerOptions = _NO_OPTIONS,
) -> Plan:
    """Plan one job. ``commitments`` are plans of other jobs that already hold resources."""
    snapshot = regions if isinstance(regions, Snapshot) else build_snapshot(regions)
    return plan_with_ledger(job, snapshot, Ledger.from_commitments(snapshot, commitments), options)


@dataclass(frozen=True, eq=False)
class _Context:
    job: Job
    snap: Snapshot
    ledger: Ledger
    options: PlannerOptions
    window: JobWindow
    allowed: np.ndarray  # (R,) bool
    home: int
    power_w: float
    energy: SlotEnergy
    limited: bool  # the snapshot has capacity limits: ask the ledger which slots are full
    baseline_g: float


def plan_with_ledger(job: Job, snap: Snapshot, ledger: Ledger, options: PlannerOptions) -> Plan:
    """Plan one job against ``ledger`` (not modified; the batch planner adds the plan itself)."""
    allowed = np.array([not job.allowed_regions or name in job.allowed_regions for name in snap.regions])
    if not allowed.any():
        return _empty(job, ReasonCode.NO_ALLOWED_REGION, f"none of the allowed regions {list(job.allowed_regions)} is known")
    power_w = job.it_power_w
    solar = ledger.solar_available_w() if snap.has_solar else snap.solar_w
    energy = slot_energy(power_w, snap.pue, solar, snap.intensity, snap.slot_hours)
    window = job_window(job, snap.start, snap.slot, options)
    return plan_in_context(make_context(job, snap, ledger, options, window, allowed, energy))


def plan_in_context(ctx: _Context) -> Plan:
    """The rest of ``plan_with_ledger`` once the job's context is built."""
    if ctx.job.interruptible:
        return _plan_interruptible(ctx)
    return _plan_contiguous(ctx)


def make_context(
    job: Job, snap: Snapshot, ledger: Ledger, options: PlannerOptions, window: JobWindow,
    allowed: np.ndarray, energy: SlotEnergy,
) -> _Context:
    """Everything the planning steps need about one job (``allowed`` must have a True entry).

    ``energy`` must be ``slot_energy`` of the job's power against the solar still available in
    the ledger; the batch planner caches it per power when the snapshot has no solar.
    """
    if job.home_region in snap.regions:
        home = snap.index(job.home_region)
    else:
        home = int(np.flatnonzero(allowed)[0])
    baseline = _contiguous_cost(energy.cost_g[home], window.earliest, window.n_slots, window.last_fraction)
    if window.preferred is not None:
        stay = _contiguous_cost(energy.cost_g[home], window.preferred, window.n_slots, window.last_fraction)
        baseline = baseline if np.isnan(stay) else stay  # past the grid's end: the earliest start's cost
    return _Context(job, snap, ledger, options, window, allowed, home, job.it_power_w, energy, snap.has_capacity_limits, baseline)


# --- contiguous (non-interruptible) work -------------------------------------------------------


def _plan_contiguous(ctx: _Context, deadline_near: bool = False) -> Plan:
    w, snap = ctx.window, ctx.snap
    e, d, frac = w.earliest, w.n_slots, w.last_fraction
    latest = w.latest_start
    if deadline_near or latest < e:
        if w.latest_start_nomargin < e:
            return _unmeetable(ctx)
        latest, deadline_near = e, True
    stop = min(snap.n_slots, latest + d)
    cost = ctx.energy.cost_g[:, e:stop]
    unknown = np.isnan(cost)
    some_unknown = bool(unknown.any())  # the window searches below are skipped when all-False
    sums = window_sums(np.where(unknown, 0.0, cost) if some_unknown else cost, d, frac)
    if sums.shape[1] == 0:
        past = _plan_past_grid(ctx, latest)
        return past if past is not None else _no_signal(ctx)
    invalid = window_any(unknown, d) if some_unknown else np.zeros(sums.shape, dtype=bool)
    full_slots = ctx.ledger.slot_full(ctx.power_w, e, stop) if ctx.limited else None
    if full_slots is not None and full_slots.any():
        full = window_any(full_slots, d)
    else:
        full = np.zeros_like(invalid)
    battery = ctx.ledger.battery_available_wh() if snap.has_battery else None
    if battery is not None:
        for r in np.flatnonzero(ctx.allowed & (battery > 0)).tolist():
            sums[r] -= battery_savings_per_window(
                ctx.energy.grid_wh[r, e:stop], snap.intensity[r, e:stop], d, frac,
                float(battery[r]), ctx.ledger.discharge_left_wh(r)[e:stop],
            )
    valid = ~invalid & ~full & ctx.allowed[:, None]
    if not valid.any():
        if not (~invalid & ctx.allowed[:, None]).any():
            return _no_signal(ctx)
        return _no_capacity(ctx)
    masked = np.where(valid, sums, np.inf)
    starts = first_minimum(masked)
    home, p = ctx.home, w.preferred_offset
    stay: tuple[bool, float] | None = None
    if 0 < p < masked.shape[1]:
        starts = _prefer(masked, starts, p)
        stay = (bool(valid[home, p]), float(sums[home, p]))
    best = masked[np.arange(masked.shape[0]), starts]
    r, slots, fractions, reasons = choose_contiguous(
        ctx, starts, best, bool(valid[home, 0]), float(sums[home, 0]), sums.shape[1], deadline_near, stay=stay)
    return finish(ctx, r, slots, fractions, reasons)


def _prefer(masked: np.ndarray, starts: np.ndarray, offset: int) -> np.ndarray:
    """``starts`` with ``offset`` wherever that start ties (``TIE_RTOL``) the region's cheapest."""
    low = masked[np.arange(masked.shape[0]), starts]
    at = masked[:, offset]
    with np.errstate(invalid="ignore"):
        tie = np.isfinite(at) & (at <= low + TIE_RTOL * np.maximum(1.0, np.abs(low)))
    return np.where(tie, offset, starts)


def choose_contiguous(
    ctx: _Context, starts: np.ndarray, best: np.ndarray, now_ok: bool, now_cost: float, n_starts: int,
    deadline_near: bool = False, *, stay: tuple[bool, float] | None = None,
) -> tuple[int, np.ndarray, np.ndarray, list[Reason]]:
    """Pick the (region, start) of a contiguous run from the per-region best starts.

    ``starts``/``best`` (R,): offset from the earliest slot and cost of each region's cheapest
    valid start (``inf`` where none); ``now_ok``/``now_cost``: whether starting at the earliest
    slot in the home region is valid, and its cost; ``n_starts``: how many starts the window has;
    ``stay``: the same for the job's preferred start (``window.preferred_offset``), the run the
    forecast-error margin falls back to when given. Shared by the single-job planner and the
    vectorised batch path, so both decide identically.
    """
    snap, home, opts = ctx.snap, ctx.home, ctx.options
    e, d, frac = ctx.window.earliest, ctx.window.n_slots, ctx.window.last_fraction
    reasons: list[Reason] = []
    choice: tuple[int, int] | None = None
    if now_ok and opts.run_now_below_g_per_kwh is not None:
        current = float(snap.intensity[home, e])
        if current <= opts.run_now_below_g_per_kwh:
            choice = (home, 0)
            reasons.append(Reason(ReasonCode.RUN_NOW_BELOW_THRESHOLD,
                                  f"{snap.regions[home]} is at {current:.0f} g/kWh, at or below the "
                                  f"{opts.run_now_below_g_per_kwh:.0f} g/kWh threshold"))
    if choice is None:
        overall, choice = greenest_start(ctx, starts, best)
        default, default_ok, default_cost = (home, 0), now_ok, now_cost
        if stay is not None:
            default, (default_ok, default_cost) = (home, ctx.window.preferred_offset), stay
        if default_ok and opts.forecast_error_fraction > 0 and choice != default:
            if default_cost - overall <= opts.forecast_error_fraction * default_cost:
                choice = default
                reasons.append(Reason(ReasonCode.GAIN_BELOW_FORECAST_ERROR,
                                      f"the best alternative saves less than the forecast error margin "
                                      f"({opts.forecast_error_fraction:.0%}); running "
                                      + ("now" if stay is None else "at the preferred start")))
    r, offset = choice
    slots = np.arange(e + offset, e + offset + d)
    fractions = np.ones(d)
    fractions[-1] = frac
    if deadline_near or n_starts == 1:
        reasons.append(Reason(ReasonCode.RUN_NOW_DEADLINE_NEAR, "no room to wait: the deadline (minus safety margin) is near"))
    return r, slots, fractions, reasons


def greenest_start(ctx: _Context, starts: np.ndarray, best: np.ndarray) -> tuple[float, tuple[int, int]]:
    """The cheapest cost and its (region, offset); the home region wins near-ties (1e-9 relative)."""
    home = ctx.home
    overall = float(best.min())
    r = home if ctx.allowed[home] and best[home] <= overall + 1e-9 * max(1.0, abs(overall)) else int(best.argmin())
    return overall, (r, int(starts[r]))


def _contiguous_cost(cost: np.ndarray, start: int, n_slots: int, frac: float) -> float:
    part = cost[start : start + n_slots]
    if part.shape[0] < n_slots:
        return float("nan")
    return float(_sum(part[:-1]) + frac * part[-1])


_sum = np.add.reduce


def _plan_past_grid(ctx: _Context, latest: int) -> Plan | None:
    """A run longer than what is left of the forecast grid (a job longer than the horizon).

    Such a job had no window at all, so it waited until its deadline forced it to run. Here the
    slots past the grid are valued at the grid's own last day, repeated (the best guess the
    snapshot holds; a caller that knows more extends the grid first, e.g. with
    ``core.stopping.fill_beyond_horizon``), and the job takes the cheapest start on the grid, tail
    included (``latest``: the last start allowed, the earliest when the deadline is near). The plan
    lists the slots on the grid; its ``end`` is start + duration, and ``expected_g``/``baseline_g``
    include the valued tail. ``None`` when no start is usable. Contiguous work only: an
    interruptible job follows its planned slots, which would stop at the end of the grid.
    """
    w, snap = ctx.window, ctx.snap
    e, d, frac = w.earliest, w.n_slots, w.last_fraction
    n = snap.n_slots
    latest = min(latest, n - 1)
    if e >= n or latest < e or e + d <= n:
        return None
    day = max(1, int(round(timedelta(days=1) / snap.slot)))
    last_day = ctx.energy.cost_g[:, max(e, n - day):]
    width = latest + d - e
    reps = -(-(width - (n - e)) // last_day.shape[1])
    cost = np.concatenate([ctx.energy.cost_g[:, e:], np.tile(last_day, reps)], axis=1)[:, :width]
    unknown = np.isnan(cost)
    sums = window_sums(np.where(unknown, 0.0, cost), d, frac)
    invalid = window_any(unknown, d)
    if ctx.limited:
        full = ctx.ledger.slot_full(ctx.power_w, e, n)
        full = np.concatenate([full, np.zeros((full.shape[0], width - full.shape[1]), dtype=bool)], axis=1)
        invalid |= window_any(full, d)
    valid = ~invalid & ctx.allowed[:, None]
    if not valid.any():
        return None
    masked = np.where(valid, sums, np.inf)
    starts = np.argmin(masked, axis=1)
    best = masked[np.arange(masked.shape[0]), starts]
    expected, (r, offset) = greenest_start(ctx, starts, best)
    baseline = float(sums[ctx.home, 0]) if not unknown[ctx.home, :d].any() else ctx.baseline_g
    ctx = replace(ctx, baseline_g=baseline)
    slots = np.arange(e + offset, n)
    plan = finish(ctx, r, slots, np.ones(slots.shape[0]), [])
    return replace(plan, end=snap.time_of(e + offset + (d - 1) + frac), expected_g=expected)


# --- interruptible work ------------------------------------------------------------------------


def _plan_interruptible(ctx: _Context) -> Plan:
    w, snap = ctx.window, ctx.snap
    e, d, frac = w.earliest, w.n_slots, w.last_fraction
    limit = min(w.slot_limit, snap.n_slots)
    if w.slot_limit - e < d:
        return _plan_contiguous(ctx, deadline_near=True)
    cost = ctx.energy.cost_g[:, e:limit]
    known = ~np.isnan(cost)
    usable = known if not ctx.limited else known & ~ctx.ledger.slot_full(ctx.power_w, e, limit)
    opts, home = ctx.options, ctx.home
    # Only when the whole run fits on the forecast grid (past its end nothing is known).
    if opts.run_now_below_g_per_kwh is not None and ctx.allowed[home] and limit - e >= d:
        current = float(snap.intensity[home, e])
        if current <= opts.run_now_below_g_per_kwh and bool(usable[home, :d].all()):
            reason = Reason(ReasonCode.RUN_NOW_BELOW_THRESHOLD,
                            f"{snap.regions[home]} is at {current:.0f} g/kWh, at or below the "
                            f"{opts.run_now_below_g_per_kwh:.0f} g/kWh threshold")
            fractions = np.ones(d)
            fractions[-1] = frac
            return finish(ctx, home, np.arange(e, e + d), fractions, [reason])
    battery = ctx.ledger.battery_available_wh() if snap.has_battery else None
    # Equal costs go to the preferred run first: the search sees its slots first (a stable sort keeps
    # that order among ties), then the rest in time order.
    p = min(w.preferred_offset, max(0, limit - e - d))
    order_slots = np.r_[p:p + d, 0:p, p + d:limit - e] if p > 0 else None
    best: tuple[float, int, np.ndarray, np.ndarray] | None = None
    any_known = False
    order = [home] + [r for r in range(len(snap.regions)) if r != home]
    for r in order:
        if not ctx.allowed[r]:
            continue
        any_known = any_known or int(known[r].sum()) >= d
        if order_slots is None:
            found = cheapest_slots(cost[r], usable[r], d, frac)
        else:
            found = cheapest_slots(cost[r, order_slots], usable[r, order_slots], d, frac)
            found = None if found is None else (np.sort(order_slots[found[0]]), found[1])
        if found is None:
            continue
        chosen, total = found
        fractions = np.ones(d)
        if frac < 1.0:
            fractions[int(np.argmax(cost[r, chosen]))] = frac
        if battery is not None and battery[r] > 0:
            slots_abs = chosen + e
            grid = ctx.energy.grid_wh[r, slots_abs] * fractions
            alloc = allocate_battery(grid, snap.intensity[r, slots_abs], float(battery[r]),
                                     ctx.ledger.discharge_left_wh(r)[slots_abs] * fractions)
            total -= float((alloc * snap.intensity[r, slots_abs]).sum() / 1000.0)
        if best is None or total < best[0] - 1e-9 * max(1.0, abs(best[0])):
            best = (total, r, chosen + e, fractions)
    if best is None:
        return _no_signal(ctx) if not any_known else _no_capacity(ctx)
    total, r, slots, fractions = best
    reasons: list[Reason] = []
    s0 = e + p  # the run "not shifting" stands for: from the preferred start, else the earliest
    if opts.forecast_error_fraction > 0 and (r != home or slots[0] != s0 or slots[-1] != s0 + d - 1):
        now_cost = ctx.baseline_g
        if bool(usable[home, p:p + d].all()) and ctx.allowed[home] and now_cost - total <= opts.forecast_error_fraction * now_cost:
            fr = np.ones(d)
            fr[-1] = frac
            reasons.append(Reason(ReasonCode.GAIN_BELOW_FORECAST_ERROR,
                                  f"the best alternative saves less than the forecast error margin "
                                  f"({opts.forecast_error_fraction:.0%}); running "
                                  + ("now" if p == 0 else "at the preferred start")))
            return finish(ctx, home, np.arange(s0, s0 + d), fr, reasons)
    if limit - e == d:
        reasons.append(Reason(ReasonCode.RUN_NOW_DEADLINE_NEAR, "no room to wait: the deadline (minus safety margin) is near"))
    return finish(ctx, r, slots, fractions, reasons)


# --- building results --------------------------------------------------------------------------


def finish(ctx: _Context, r: int, slots: np.ndarray, fractions: np.ndarray, reasons: list[Reason], feasible: bool = True) -> Plan:
    snap, e = ctx.snap, ctx.window.earliest
    first, count = int(slots[0]), len(slots)
    contiguous = int(slots[-1]) - first == count - 1  # slots are sorted and distinct
    where = slice(first, first + count) if contiguous else slots  # a view reads the same values, faster
    intensity = snap.intensity[r, where]
    grid = ctx.energy.grid_wh[r, where] * fractions
    solar = ctx.energy.solar_wh[r, where] * fractions
    battery_wh: np.ndarray | None = None
    if snap.has_battery:
        budget = float(ctx.ledger.battery_available_wh()[r])
        if budget > 0:
            battery_wh = allocate_battery(grid, intensity, budget, ctx.ledger.discharge_left_wh(r)[slots] * fractions)
    # Without battery energy the net grid draw is ``grid`` itself (x - 0.0 == x): skip the zeros.
    net = grid if battery_wh is None else grid - battery_wh
    # np.add.reduce is what ndarray.sum() runs, without its Python-level wrapper
    expected = float(_sum(net * intensity) / 1000.0)
    grid_wh = _sum(grid)
    battery_total = 0.0 if battery_wh is None else _sum(battery_wh)
    solar_total = _sum(solar)
    quiet = any(reason.code in _QUIET for reason in reasons)
    if feasible and not quiet:
        if first > e and first == ctx.window.preferred and r == ctx.home:
            reasons.append(Reason(ReasonCode.DELAYED_TO_GREENER_WINDOW,
                                  f"waits {snap.slot * (first - e)} for its preferred start: no greener window "
                                  f"({_mean(expected, grid_wh, battery_total):.0f} g/kWh expected)"))
        elif first > e:
            delay = snap.slot * (first - e)
            versus = "now" if ctx.window.preferred is None else "at the preferred start"
            reasons.append(Reason(ReasonCode.DELAYED_TO_GREENER_WINDOW,
                                  f"start delayed by {delay} to a greener window ({_mean(expected, grid_wh, battery_total):.0f} g/kWh "
                                  f"expected vs {_mean(ctx.baseline_g, grid_wh, 0.0):.0f} g/kWh {versus})"))
        if not contiguous:
            reasons.append(Reason(ReasonCode.SPLIT_INTO_GREEN_SLOTS, f"runs in the {count} greenest slots before the deadline"))
        if r != ctx.home:
            reasons.append(Reason(ReasonCode.PLACED_IN_GREENER_REGION,
                                  f"placed in {snap.regions[r]} instead of {snap.regions[ctx.home]}: greener"))
        if not reasons:
            reasons.append(Reason(ReasonCode.RUN_NOW_GREENEST, "running now is the greenest option before the deadline"))
    onsite = float(solar_total + battery_total)
    if onsite > 0:
        reasons.append(Reason(ReasonCode.USES_ONSITE_ENERGY,
                              f"{onsite:.0f} Wh from on-site solar/battery ({solar_total:.0f} Wh solar, {battery_total:.0f} Wh battery)"))
    pue = float(snap.pue[r])
    return Plan(
        job_id=ctx.job.id,
        feasible=feasible,
        region=snap.regions[r],
        start=snap.time_of(int(slots[0])),
        end=snap.time_of(float(slots[-1]) + float(fractions[-1])),
        slots=tuple(slots.tolist()),
        slot_fractions=tuple(fractions.tolist()),
        it_power_w=ctx.power_w,
        facility_power_w=ctx.power_w * pue,
        expected_g=expected,
        baseline_g=ctx.baseline_g,
        reasons=tuple(reasons),
        solar_wh_by_slot=tuple(solar.tolist()),
        battery_wh_by_slot=(0.0,) * len(grid) if battery_wh is None else tuple(battery_wh.tolist()),
        slot_start=snap.start,
        slot_length=snap.slot,
    )


# a tuple: membership tests by identity, no (Python-level) enum hashing
_QUIET = (ReasonCode.RUN_NOW_BELOW_THRESHOLD, ReasonCode.GAIN_BELOW_FORECAST_ERROR, ReasonCode.NO_SIGNAL_FALLBACK)


def _mean(grams: float, grid_wh: float, battery_wh: float) -> float:
    """Mean grid intensity in g/kWh of ``grams`` over the net grid energy (totals in Wh)."""
    kwh = float(grid_wh - battery_wh) / 1000.0
    return grams / kwh if kwh > 0 else 0.0


def _run_now_region(ctx: _Context) -> int | None:
    """Home if allowed and free at the earliest slots, else the first allowed region that is."""
    e, d = ctx.window.earliest, ctx.window.n_slots
    if e + d > ctx.snap.n_slots:
        return None
    order = [ctx.home] + [r for r in range(len(ctx.snap.regions)) if r != ctx.home]
    for r in order:
        if ctx.allowed[r] and (not ctx.limited or not ctx.ledger.would_overflow(r, e, e + d, ctx.power_w)):
            return r
    return None


def _run_now(ctx: _Context, reason: Reason, feasible: bool) -> Plan:
    r = _run_now_region(ctx)
    if r is None:
        return _no_capacity(ctx) if feasible else _empty(ctx.job, reason.code, reason.message, ctx.baseline_g)
    e, d = ctx.window.earliest, ctx.window.n_slots
    fractions = np.ones(d)
    fractions[-1] = ctx.window.last_fraction
    return finish(ctx, r, np.arange(e, e + d), fractions, [reason], feasible=feasible)


def _no_signal(ctx: _Context) -> Plan:
    return _run_now(ctx, Reason(ReasonCode.NO_SIGNAL_FALLBACK, "no usable carbon signal in any allowed region: running now"), True)


def _unmeetable(ctx: _Context) -> Plan:
    return _run_now(ctx, Reason(ReasonCode.DEADLINE_UNMEETABLE, "even running now cannot finish before the deadline"), False)


def _no_capacity(ctx: _Context) -> Plan:
    return _empty(ctx.job, ReasonCode.NO_CAPACITY, "no allowed region has room before the deadline", ctx.baseline_g, ctx.power_w)


def _empty(job: Job, code: ReasonCode, message: str, baseline_g: float = float("nan"), power_w: float | None = None) -> Plan:
    power = job.it_power_w if power_w is None else power_w
    return Plan(job_id=job.id, feasible=False, region=None, start=None, end=None, slots=(), slot_fractions=(),
                it_power_w=power, facility_power_w=power, expected_g=float("nan"), baseline_g=baseline_g,
                reasons=(Reason(code, message),))
