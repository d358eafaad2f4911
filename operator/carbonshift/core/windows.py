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

# Window costs within this relative distance of the cheapest are ties (then the earliest start
# wins). Sums from prefix sums carry rounding errors of about 1e-16 x (span / run length)
# relative, so equal windows can differ in their last bits: an exact argmin would then pick a
# later start on a constant forecast. 1e-9 is far above that noise and far below any real saving.
TIE_RTOL = 1e-9


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


def first_minimum(values: FloatArray) -> IntArray:
    """Along the last axis, the first index whose value is within ``TIE_RTOL`` of the minimum.

    ``inf`` marks invalid entries; a row of only ``inf`` gives 0, as ``argmin`` would.
    """
    low = values.min(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore"):
        near = values <= low + TIE_RTOL * np.maximum(1.0, np.abs(low))
    first: IntArray = np.argmax(near, axis=-1)
    return first


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


def best_window_starts(
    cost: FloatArray,
    which: IntArray,
    first: IntArray,
    n_slots: IntArray,
    last_fraction: FloatArray,
    n_starts: IntArray,
    allowed: BoolArray,
    max_elements: int = 1 << 17,
) -> tuple[IntArray, FloatArray, FloatArray, BoolArray, BoolArray]:
    """``window_sums`` + masked argmin for many jobs at once, bit-for-bit as one job at a time.

    ``cost`` is ``(P, R, n)``: one cost array per distinct job power. Job ``j`` uses
    ``cost[which[j]]``, may start at slots ``first[j] + s`` for ``s < n_starts[j]`` and runs
    ``n_slots[j]`` slots, the last for ``last_fraction[j]``; ``allowed`` is ``(J, R)``. A start is
    valid when the region is allowed and no slot of the run has NaN cost. Returns, per job and
    region, the offset of the cheapest valid start (the first within ``TIE_RTOL`` of the cheapest:
    ``first_minimum``) and its cost (``inf`` if none),
    then the cost and validity of offset 0, and whether the region has any valid start.

    Every job's sums come from a sequential prefix sum over its own slots ``[first, first +
    n_starts + n_slots - 1)``, exactly like ``window_sums`` on that slice, so the floating-point
    results (and hence tie-breaking) are identical to the single-job planner's. Jobs are
    processed in chunks of similar length, so memory stays near ``max_elements`` floats per array.
    """
    n_jobs = first.shape[0]
    n_regions, n = cost.shape[1], cost.shape[2]
    starts = np.zeros((n_jobs, n_regions), dtype=np.int64)
    best = np.full((n_jobs, n_regions), np.inf)
    cost0 = np.zeros((n_jobs, n_regions))
    valid0 = np.zeros((n_jobs, n_regions), dtype=bool)
    row_valid = np.zeros((n_jobs, n_regions), dtype=bool)
    span = n_starts + n_slots - 1
    order = np.argsort(span, kind="stable")
    span_sorted = span[order]
    some_unknown = bool(np.isnan(cost).any())
    lo = 0
    while lo < n_jobs:
        # the largest chunk [lo, hi) of similar-length jobs within the element budget
        sizes = np.arange(1, n_jobs - lo + 1) * np.maximum(span_sorted[lo:], 1) * n_regions
        hi = lo + max(1, int(np.searchsorted(sizes, max_elements, side="right")))
        idx = order[lo:hi]
        lo = hi
        n_chunk, length = idx.shape[0], int(span_sorted[hi - 1])
        e, d, m = first[idx], n_slots[idx], n_starts[idx]
        width = int(m.max())
        # flat indices into cost: row (power, region), column clipped (beyond a job's span: never read)
        rows = (which[idx][:, None] * n_regions + np.arange(n_regions)[None, :]) * n
        columns = np.minimum(e[:, None] + np.arange(length), n - 1)
        c = np.take(cost, rows[:, :, None] + columns[:, None, :])  # (J, R, length)
        if some_unknown:
            unknown = np.isnan(c)
            c = np.where(unknown, 0.0, c)
        prefix = np.zeros((n_chunk, n_regions, length + 1))
        np.cumsum(c, axis=2, out=prefix[:, :, 1:])
        s = np.arange(width)
        # flat index of each run's last slot, in prefix (length + 1 per row) and in c (length per row)
        last = np.minimum(s[None, :] + d[:, None] - 1, length - 1)[:, None, :]  # (J, 1, S)
        row_base = np.arange(n_chunk * n_regions).reshape(n_chunk, n_regions, 1)
        sums = (np.take(prefix, row_base * (length + 1) + last) - prefix[:, :, :width]
                + last_fraction[idx][:, None, None] * np.take(c, row_base * length + last))
        valid = allowed[idx][:, :, None] & (s[None, None, :] < m[:, None, None])
        if some_unknown:
            count = np.zeros((n_chunk, n_regions, length + 1), dtype=np.int32)
            np.cumsum(unknown, axis=2, out=count[:, :, 1:])
            end = np.minimum(s[None, :] + d[:, None], length)[:, None, :]
            valid = valid & (np.take(count, row_base * (length + 1) + end) == count[:, :, :width])
        masked = np.where(valid, sums, np.inf)
        chosen = first_minimum(masked)
        starts[idx] = chosen
        best[idx] = np.take_along_axis(masked, chosen[:, :, None], 2)[:, :, 0]
        cost0[idx] = sums[:, :, 0]
        valid0[idx] = valid[:, :, 0]
        row_valid[idx] = valid.any(axis=2)
    return starts, best, cost0, valid0, row_valid
