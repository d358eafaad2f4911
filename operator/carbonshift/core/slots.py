"""Time arithmetic between a job's datetimes and the snapshot's uniform slot grid.

Why this module exists: every rounding decision about "which slot is now", "how many slots does
the job need" and "what is the latest start that still ends before the deadline minus margin"
lives here once, so the deadline rule is enforced in exactly one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from carbonshift.core.model import Job, PlannerOptions

_EPS = 1e-9


@dataclass(frozen=True)
class JobWindow:
    """A job's constraints in slot units.

    ``earliest`` is the first slot it may start in; it needs ``n_slots`` slots, the last one used
    for ``last_fraction`` of its length. Contiguous starts must lie in ``[earliest,
    latest_start]``; interruptible slots must lie in ``[earliest, slot_limit)``. The ``*_nomargin``
    variants ignore the safety margin (used when the margin alone makes the job infeasible).
    ``preferred`` is the slot of the job's preferred start when it is later than ``earliest``
    (clamped to ``latest_start``), else ``None``: "not shifting" is then the earliest start.
    """

    earliest: int
    n_slots: int
    last_fraction: float
    latest_start: int
    slot_limit: int
    latest_start_nomargin: int
    slot_limit_nomargin: int
    preferred: int | None = None

    @property
    def preferred_offset(self) -> int:
        """The preferred start counted from ``earliest`` (0 without a later preferred start)."""
        return 0 if self.preferred is None else self.preferred - self.earliest


def _slots_between(a: datetime, b: datetime, slot: timedelta) -> float:
    return (b - a) / slot


def job_window(job: Job, grid_start: datetime, slot: timedelta, options: PlannerOptions) -> JobWindow:
    earliest = max(0, math.ceil(_slots_between(grid_start, job.submit_at, slot) - _EPS))
    need = job.duration / slot
    n_slots = max(1, math.ceil(need - _EPS))
    last_fraction = 1.0 if need <= 0 else min(1.0, max(need - (n_slots - 1), _EPS))
    margin = job.duration * options.safety_margin_fraction + options.safety_margin
    end_margin = _slots_between(grid_start, job.deadline - margin, slot)
    end_plain = _slots_between(grid_start, job.deadline, slot)
    used = (n_slots - 1) + last_fraction
    latest_start = math.floor(end_margin - used + _EPS)
    preferred: int | None = None
    if job.preferred_start is not None:
        # the slot the preferred start falls in, as for ``earliest``; never past the latest start
        wanted = min(math.ceil(_slots_between(grid_start, job.preferred_start, slot) - _EPS), latest_start)
        preferred = wanted if wanted > earliest else None
    return JobWindow(
        earliest=earliest,
        n_slots=n_slots,
        last_fraction=last_fraction,
        latest_start=latest_start,
        slot_limit=math.floor(end_margin + _EPS),
        latest_start_nomargin=math.floor(end_plain - used + _EPS),
        slot_limit_nomargin=math.floor(end_plain + _EPS),
        preferred=preferred,
    )
