"""Hypothesis strategies shared by the core tests: small random snapshots and jobs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import numpy as np
from hypothesis import strategies as st

from carbonshift.core import Job, RegionSignals

T0 = datetime(2020, 1, 1, tzinfo=timezone.utc)
SLOT = timedelta(minutes=30)
REGIONS = ("a", "b", "c")


@st.composite
def snapshots(draw: st.DrawFn, max_regions: int = 3, min_slots: int = 4, max_slots: int = 12) -> list[RegionSignals]:
    n_regions = draw(st.integers(1, max_regions))
    n = draw(st.integers(min_slots, max_slots))
    out = []
    for r in range(n_regions):
        values = draw(st.lists(st.integers(10, 600), min_size=n, max_size=n))
        out.append(RegionSignals(REGIONS[r], T0, SLOT, np.array(values, dtype=float)))
    return out


@st.composite
def jobs(draw: st.DrawFn, n_slots: int, regions: tuple[str, ...], interruptible: bool | None = None, job_id: str = "j") -> Job:
    duration_min = draw(st.sampled_from([15, 30, 45, 60, 90]))
    need = -(-duration_min // 30)
    submit = draw(st.integers(0, n_slots - need))
    latest_end = draw(st.integers(submit + need, n_slots))
    allowed = tuple(draw(st.lists(st.sampled_from(regions), min_size=1, max_size=len(regions), unique=True)))
    home = draw(st.sampled_from(regions))
    flag = draw(st.booleans()) if interruptible is None else interruptible
    return Job(job_id, T0 + SLOT * submit, timedelta(minutes=duration_min), T0 + SLOT * latest_end,
               power_w=float(draw(st.integers(100, 2000))), allowed_regions=allowed, home_region=home, interruptible=flag)
