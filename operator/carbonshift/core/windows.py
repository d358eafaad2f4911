"""Vectorised search primitives: sliding-window sums and cheapest-slot selection.

Why this module exists: the two inner loops of planning, "cost of every contiguous start" and
"the k cheapest slots before the deadline", are pure array problems. Keeping them here, free of
jobs and datetimes, makes them easy to test against brute force and to optimise.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]


def window_sums(cost: FloatArray, n_slots: int, last_fraction: float = 1.0) -> FloatArray:
    """Cost of a run starting at every slot: full slots plus ``last_fraction`` of the last one.

    ``cost`` is ``(R, n)``; the result is ``(R, n - n_slots + 1)`` (empty if the run does not fit).
    Uses prefix sums, so it is O(R*n) whatever the run length.
    """
    r, n = cost.shape
    m = n - n_slots + 1
    if m <= 0:
        return np.empty((r, 0))
    prefix = np.zeros((r, n + 1))
    np.cumsum(cost, axis=1, out=prefix[:, 1:])
    full = prefix[:, n_slots - 1 : n_slots - 1 + m] - prefix[:, :m]
    return full + last_fraction * cost[:, n_slots - 1 : n_slots - 1 + m]


def window_any(flag: BoolArray, n_slots: int) -> BoolArray:
    """For every start, whether any of the ``n_slots`` slots from there is flagged."""
    r, n = flag.shape
    m = n - n_slots + 1
    if m <= 0:
        return np.empty((r, 0), dtype=bool)
    prefix = np.zeros((r, n + 1))
    np.cumsum(flag, axis=1, out=prefix[:, 1:])
    return (prefix[:, n_slots : n_slots + m] - prefix[:, :m]) > 0.5


def cheapest_slots(cost: FloatArray, usable: BoolArray, k: int, last_fraction: float = 1.0) -> tuple[IntArray, float] | None:
    """The ``k`` cheapest usable slots (time-ordered) and their cost, or ``None`` if too few.

    The partial slot (``last_fraction`` of a slot) is charged to the most expensive chosen slot,
    which is optimal: the fractional use goes where it costs most to run fully. Ties are broken by
    the earlier slot (stable sort), so the result is deterministic.
    """
    candidates = np.flatnonzero(usable)
    if candidates.size < k:
        return None
    order = np.argsort(cost[candidates], kind="stable")[:k]
    chosen = candidates[order]
    values = cost[chosen]
    total = float(values.sum() - (1.0 - last_fraction) * values.max())
    return np.sort(chosen), total
