"""What a decided window costs on today's signals (the hysteresis's yardstick).

Why this module exists: a waiting job's decision is kept unless a new plan emits clearly less
(``replanMinImprovement``). Compared with the emissions the decision expected when it was made,
a window the newest forecast made expensive is kept, and one it made cheaper can be given up for
a worse one. Re-costing the decided window on the same signals the new plan was made on makes
the comparison like for like. The grams are counted as the planner counts a plan's
``expected_g`` (``single.finish``): PUE, on-site solar not promised to other plans, then the
battery on the dirtiest slots, through the same ``core.energy`` functions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime

import numpy as np

from carbonshift.core.energy import allocate_battery, slot_energy
from carbonshift.core.ledger import Ledger
from carbonshift.core.plan import Plan
from carbonshift.core.snapshot import Snapshot

_EPS = 1e-9


def grid_slots(snap: Snapshot, intervals: Sequence[tuple[datetime, datetime]]) -> tuple[tuple[int, ...], tuple[float, ...]] | None:
    """The snapshot's slots that ``intervals`` cover and the share of each covered.

    The operator's grid starts at each cycle's "now", so a window decided in an earlier cycle
    may cover slots partly at both ends. ``None`` when some part lies off the grid (before its
    start or past its end) or nothing is covered.
    """
    covered: dict[int, float] = {}
    for begin, end in intervals:
        a, b = (begin - snap.start) / snap.slot, (end - snap.start) / snap.slot
        if b <= a:
            continue
        if a < -_EPS or b > snap.n_slots + _EPS:
            return None
        for index in range(max(0, math.floor(a + _EPS)), min(snap.n_slots, math.ceil(b - _EPS))):
            share = min(b, index + 1) - max(a, index)
            if share > _EPS:
                covered[index] = covered.get(index, 0.0) + share
    if not covered:
        return None
    slots = tuple(sorted(covered))
    return slots, tuple(min(1.0, covered[s]) for s in slots)


def slots_cost_g(snap: Snapshot, region: str, slots: Sequence[int], fractions: Sequence[float], it_power_w: float,
                 commitments: Iterable[Plan] = ()) -> float | None:
    """Grid gCO2eq of ``it_power_w`` in ``region`` during ``slots`` (each used for its fraction).

    ``commitments`` are the other jobs' plans, whose on-site solar and battery energy is not
    available (read only when the snapshot has solar or a battery). ``None`` when the region is
    not on the snapshot, a slot lies off its grid, or a used slot's intensity is unknown.
    """
    if region not in snap.regions or not slots or len(slots) != len(fractions):
        return None
    index = np.asarray(slots, dtype=np.int64)
    if int(index.min()) < 0 or int(index.max()) >= snap.n_slots:
        return None
    r = snap.index(region)
    share = np.asarray(fractions, dtype=np.float64)
    intensity = snap.intensity[r, index]
    if bool(np.isnan(intensity[share > 0]).any()):
        return None
    intensity = np.where(share > 0, intensity, 0.0)
    ledger = Ledger.from_commitments(snap, commitments) if snap.has_solar or snap.has_battery else None
    solar = snap.solar_w if ledger is None else ledger.solar_available_w()
    energy = slot_energy(it_power_w, snap.pue[r:r + 1], solar[r:r + 1, index], intensity[None, :], snap.slot_hours)
    grid = energy.grid_wh[0] * share
    if ledger is not None and snap.has_battery:
        budget = float(ledger.battery_available_wh()[r])
        if budget > 0:
            grid = grid - allocate_battery(grid, intensity, budget, ledger.discharge_left_wh(r)[index] * share)
    return float((grid * intensity).sum() / 1000.0)


def window_cost_g(snap: Snapshot, region: str, intervals: Sequence[tuple[datetime, datetime]], it_power_w: float,
                  commitments: Iterable[Plan] = ()) -> float | None:
    """``slots_cost_g`` of the slots ``intervals`` cover (``None`` when they are not all on the grid)."""
    covered = grid_slots(snap, intervals)
    if covered is None:
        return None
    return slots_cost_g(snap, region, covered[0], covered[1], it_power_w, commitments)
