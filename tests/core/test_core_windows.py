"""Vectorised primitives against brute force."""

from __future__ import annotations

import itertools

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonshift.core.windows import cheapest_slots, window_any, window_sums

costs = st.lists(st.integers(0, 500), min_size=1, max_size=14).map(lambda v: np.array(v, dtype=float))


@settings(deadline=None, max_examples=60)
@given(costs, st.integers(1, 6), st.sampled_from([0.25, 0.5, 1.0]))
def test_window_sums_equal_brute_force(cost: np.ndarray, d: int, frac: float) -> None:
    got = window_sums(cost[None, :], d, frac)[0]
    want = [cost[s : s + d - 1].sum() + frac * cost[s + d - 1] for s in range(len(cost) - d + 1)]
    assert np.allclose(got, want)


@settings(deadline=None, max_examples=60)
@given(st.lists(st.booleans(), min_size=1, max_size=14), st.integers(1, 5))
def test_window_any_equal_brute_force(flags: list[bool], d: int) -> None:
    got = window_any(np.array([flags]), d)[0]
    assert list(got) == [any(flags[s : s + d]) for s in range(len(flags) - d + 1)]


@settings(deadline=None, max_examples=60)
@given(costs, st.data())
def test_cheapest_slots_equal_brute_force(cost: np.ndarray, data: st.DataObject) -> None:
    usable = np.array(data.draw(st.lists(st.booleans(), min_size=len(cost), max_size=len(cost))))
    k = data.draw(st.integers(1, 4))
    frac = data.draw(st.sampled_from([0.5, 1.0]))
    got = cheapest_slots(cost, usable, k, frac)
    idx = np.flatnonzero(usable)
    if len(idx) < k:
        assert got is None
        return
    best = min(sum(cost[list(c)]) - (1 - frac) * max(cost[list(c)]) for c in itertools.combinations(idx, k))
    assert got is not None
    assert np.isclose(got[1], best)
    assert list(got[0]) == sorted(got[0])
