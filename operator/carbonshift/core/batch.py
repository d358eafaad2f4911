"""Plan many jobs that share capacity, solar surplus and battery energy: the greedy heuristic.

Why this module exists: with shared capacity, placing non-interruptible jobs optimally is an
integer problem (NP-hard in general), so the batch planner is a heuristic: jobs are planned one
at a time with ``plan_with_ledger`` (each placement optimal given the earlier ones) and each plan
is added to the ledger before the next job. ``BatchOrder.LEAST_SLACK`` plans the jobs with the
least freedom first (slack = latest start - earliest start), then earliest deadline, then id, so
tight jobs are not starved by flexible ones. ``BatchOrder.AS_GIVEN`` keeps the caller's order
(online arrival order in the simulator). For interruptible work sharing resources, the optimal
LP in ``carbonshift.core.flow`` is available.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from enum import Enum

from carbonshift.core.ledger import Ledger
from carbonshift.core.model import Job, PlannerOptions, RegionSignals
from carbonshift.core.plan import Plan
from carbonshift.core.single import plan_with_ledger
from carbonshift.core.slots import job_window
from carbonshift.core.snapshot import Snapshot, build_snapshot


class BatchOrder(str, Enum):
    LEAST_SLACK = "LeastSlack"
    AS_GIVEN = "AsGiven"


def plan_jobs(
    jobs: Sequence[Job],
    regions: Sequence[RegionSignals] | Snapshot,
    commitments: Iterable[Plan] = (),
    options: PlannerOptions = PlannerOptions(),
    order: BatchOrder = BatchOrder.LEAST_SLACK,
) -> list[Plan]:
    """Plan ``jobs`` greedily; returns plans in the order of ``jobs``."""
    snapshot = regions if isinstance(regions, Snapshot) else build_snapshot(regions)
    ledger = Ledger.from_commitments(snapshot, commitments)
    indices = list(range(len(jobs)))
    if order is BatchOrder.LEAST_SLACK:
        def key(i: int) -> tuple[int, object, str]:
            window = job_window(jobs[i], snapshot.start, snapshot.slot, options)
            return (window.latest_start - window.earliest, jobs[i].deadline, jobs[i].id)
        indices.sort(key=key)
    plans: list[Plan | None] = [None] * len(jobs)
    for i in indices:
        plan = plan_with_ledger(jobs[i], snapshot, ledger, options)
        ledger.add(plan)
        plans[i] = plan
    return [p for p in plans if p is not None]
