"""Energy accounting: how much of a job's facility energy the grid must supply, and at what carbon.

Why this module exists: on-site solar surplus and a battery charged by it cost ~zero grid carbon,
so a job's grid share is only what green supply cannot cover, and PUE turns IT energy into
facility energy. These rules are shared by the single-job planner, the greedy batch planner and
the evaluation of plans, so they live in one place.

Battery model here (single job / greedy): the battery is an energy pool of ``usable_wh`` (above
its reserve) that can be spent in any planned slot at up to ``max_discharge_w``. Spending it on the
slots with the highest grid intensity is optimal for a fixed schedule (a fractional knapsack).
Recharging from future solar surplus is ignored here, which is conservative; the LP planner
(``carbonshift.core.flow``) models the state of charge slot by slot, charging included.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class SlotEnergy:
    """Per region and slot, for one job running a full slot: grid Wh, solar Wh and grid gCO2eq."""

    grid_wh: FloatArray
    solar_wh: FloatArray
    cost_g: FloatArray  # NaN where the intensity is unknown


def slot_energy(it_power_w: float, pue: FloatArray, solar_available_w: FloatArray, intensity: FloatArray, slot_hours: float) -> SlotEnergy:
    facility_w = it_power_w * pue[:, None]
    solar_w = np.minimum(facility_w, solar_available_w)
    grid_wh = (facility_w - solar_w) * slot_hours
    return SlotEnergy(grid_wh=grid_wh, solar_wh=solar_w * slot_hours, cost_g=grid_wh * intensity / 1000.0)


def allocate_battery(grid_wh: FloatArray, intensity: FloatArray, budget_wh: float, max_wh_per_slot: FloatArray) -> FloatArray:
    """Battery Wh per slot covering grid energy, highest-intensity slots first (optimal, greedy)."""
    out = np.zeros_like(grid_wh)
    if budget_wh <= 0 or grid_wh.size == 0:
        return out
    cap = np.minimum(grid_wh, max_wh_per_slot)
    cap = np.where(np.isnan(intensity), 0.0, cap)
    order = np.argsort(-np.nan_to_num(intensity, nan=-np.inf), kind="stable")
    before = np.cumsum(cap[order]) - cap[order]
    out[order] = np.clip(budget_wh - before, 0.0, cap[order])
    return out


def battery_savings_per_window(
    grid_wh: FloatArray, intensity: FloatArray, n_slots: int, last_fraction: float, budget_wh: float, max_wh_per_slot: FloatArray
) -> FloatArray:
    """Grid gCO2eq the battery avoids for every contiguous start of one region (vectorised).

    ``grid_wh``, ``intensity`` and ``max_wh_per_slot`` (discharge still allowed in each slot) are
    1-D over slots; the result has one entry per start.
    """
    n = grid_wh.shape[0]
    m = n - n_slots + 1
    if m <= 0 or budget_wh <= 0:
        return np.zeros(max(m, 0))
    weights = np.ones(n_slots)
    weights[-1] = last_fraction
    g = np.lib.stride_tricks.sliding_window_view(grid_wh, n_slots) * weights
    ci = np.nan_to_num(np.lib.stride_tricks.sliding_window_view(intensity, n_slots), nan=0.0)
    cap = np.minimum(g, np.lib.stride_tricks.sliding_window_view(max_wh_per_slot, n_slots) * weights)
    order = np.argsort(-ci, axis=1, kind="stable")
    cap_sorted = np.take_along_axis(cap, order, axis=1)
    ci_sorted = np.take_along_axis(ci, order, axis=1)
    before = np.cumsum(cap_sorted, axis=1) - cap_sorted
    alloc = np.clip(budget_wh - before, 0.0, cap_sorted)
    saved_g: FloatArray = (alloc * ci_sorted).sum(axis=1) / 1000.0
    return saved_g
