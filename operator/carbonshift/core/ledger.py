"""Shared resources already promised to other jobs: capacity, solar surplus, battery energy.

Why this module exists: plans are made one after another (or re-made as forecasts change), and
each must see what earlier plans already consume. The ledger turns committed ``Plan`` objects into
per-region, per-slot usage arrays and is updated in place as a batch is planned. It is internal
to the core; callers pass commitments as plain ``Plan`` values.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from carbonshift.core.plan import Plan
from carbonshift.core.snapshot import Snapshot


class Ledger:
    """Usage per region and slot. Mutable on purpose, but never escapes a planning call."""

    def __init__(self, snapshot: Snapshot) -> None:
        r, n = snapshot.intensity.shape
        self.snapshot = snapshot
        self.jobs = np.zeros((r, n))
        self.power_w = np.zeros((r, n))
        self.solar_used_w = np.zeros((r, n))
        self.battery_used_wh = np.zeros(r)
        self.battery_w = np.zeros((r, n))
        self.tracks = snapshot.has_capacity_limits or snapshot.has_solar or snapshot.has_battery

    @classmethod
    def from_commitments(cls, snapshot: Snapshot, commitments: Iterable[Plan]) -> Ledger:
        ledger = cls(snapshot)
        for plan in commitments:
            ledger.add(plan, force=True)
        return ledger

    def add(self, plan: Plan, force: bool = False) -> None:
        """Consume the resources of ``plan`` (skipped when nothing is limited, unless forced)."""
        if plan.region is None or not plan.slots or not (self.tracks or force):
            return
        if plan.region not in self.snapshot.regions:
            return
        r = self.snapshot.index(plan.region)
        n = self.snapshot.n_slots
        first, count = plan.slots[0], len(plan.slots)
        inside: np.ndarray | None = None
        where: slice | np.ndarray
        if 0 <= first and first + count <= n and plan.slots == tuple(range(first, first + count)):
            where = slice(first, first + count)  # a contiguous run: a view, no index array
        else:
            where = np.asarray(plan.slots, dtype=np.int64)
            inside = (where >= 0) & (where < n)
            if not inside.all():
                where = where[inside]
                if where.size == 0:
                    return
            else:
                inside = None
        self.jobs[r, where] += 1.0
        self.power_w[r, where] += plan.it_power_w
        hours = self.snapshot.slot_hours
        # all-zero solar/battery use changes nothing (x + 0.0 == x): skip the array work
        if any(plan.solar_wh_by_slot):
            solar = np.asarray(plan.solar_wh_by_slot[:count], dtype=np.float64)
            self.solar_used_w[r, where] += (solar if inside is None else solar[inside]) / hours
        if any(plan.battery_wh_by_slot):
            battery = np.asarray(plan.battery_wh_by_slot[:count], dtype=np.float64)
            self.battery_w[r, where] += (battery if inside is None else battery[inside]) / hours
            self.battery_used_wh[r] += float(battery.sum())

    def would_overflow(self, r: int, first: int, stop: int, it_power_w: float) -> bool:
        """Whether one more job of this power in slots ``[first, stop)`` of region ``r`` exceeds a limit.

        The same test as ``slot_full`` restricted to one run, on the run's peak usage: rounding is
        monotonic, so ``max(x) + 1 > c`` exactly when some ``x + 1 > c`` (``fmax`` skips NaN,
        which fails every comparison anyway).
        """
        snap = self.snapshot
        if stop <= first:
            return False
        return bool(
            _peak(self.jobs[r, first:stop]) + 1.0 > snap.max_jobs[r] + 1e-9
            or _peak(self.power_w[r, first:stop]) + it_power_w > snap.power_budget_w[r] + 1e-9
        )

    def solar_available_w(self) -> np.ndarray:
        return np.clip(self.snapshot.solar_w - self.solar_used_w, 0.0, None)

    def battery_available_wh(self) -> np.ndarray:
        return np.clip(self.snapshot.battery_usable_wh - self.battery_used_wh, 0.0, None)

    def discharge_left_wh(self, r: int) -> np.ndarray:
        """(n,) battery energy per slot still allowed by the region's max discharge power."""
        snap = self.snapshot
        left: np.ndarray = np.clip(snap.battery_max_discharge_w[r] - self.battery_w[r], 0.0, None) * snap.slot_hours
        return left

    def slot_full(self, it_power_w: float, first: int = 0, stop: int | None = None) -> np.ndarray:
        """(R, stop - first) bool: slots where one more job of this power would exceed a limit."""
        snap = self.snapshot
        return (self.jobs[:, first:stop] + 1.0 > snap.max_jobs[:, None] + 1e-9) | (
            self.power_w[:, first:stop] + it_power_w > snap.power_budget_w[:, None] + 1e-9
        )


_peak = np.fmax.reduce
