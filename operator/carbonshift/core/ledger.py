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
        slots = np.asarray([s for s in plan.slots if 0 <= s < n], dtype=np.int64)
        if slots.size == 0:
            return
        self.jobs[r, slots] += 1.0
        self.power_w[r, slots] += plan.it_power_w
        hours = self.snapshot.slot_hours
        if plan.solar_wh_by_slot:
            solar = np.asarray(plan.solar_wh_by_slot[: len(plan.slots)], dtype=np.float64)
            keep = [i for i, s in enumerate(plan.slots) if 0 <= s < n]
            self.solar_used_w[r, slots] += solar[keep] / hours
        if plan.battery_wh_by_slot:
            battery = np.asarray(plan.battery_wh_by_slot[: len(plan.slots)], dtype=np.float64)
            keep = [i for i, s in enumerate(plan.slots) if 0 <= s < n]
            self.battery_w[r, slots] += battery[keep] / hours
            self.battery_used_wh[r] += float(battery.sum())

    def solar_available_w(self) -> np.ndarray:
        return np.clip(self.snapshot.solar_w - self.solar_used_w, 0.0, None)

    def battery_available_wh(self) -> np.ndarray:
        return np.clip(self.snapshot.battery_usable_wh - self.battery_used_wh, 0.0, None)

    def discharge_left_wh(self, r: int) -> np.ndarray:
        """(n,) battery energy per slot still allowed by the region's max discharge power."""
        snap = self.snapshot
        return np.clip(snap.battery_max_discharge_w[r] - self.battery_w[r], 0.0, None) * snap.slot_hours

    def slot_full(self, it_power_w: float) -> np.ndarray:
        """(R, n) bool: slots where one more job of this power would exceed a capacity limit."""
        snap = self.snapshot
        return (self.jobs + 1.0 > snap.max_jobs[:, None] + 1e-9) | (
            self.power_w + it_power_w > snap.power_budget_w[:, None] + 1e-9
        )
