"""The pure decision core: a snapshot of jobs and region signals in, plans with reasons out.

No Kubernetes, HTTP, asyncio or clock: every input is a value, every output is a value, and the
same code plans live jobs, answers what-if questions and computes the perfect-foresight oracle
(the planner fed actual values). See docs/planner.md for the methods and which are optimal.
"""

from carbonshift.core.batch import BatchOrder, plan_jobs
from carbonshift.core.bound import Bound, emissions_lower_bound
from carbonshift.core.flow import plan_interruptible_lp
from carbonshift.core.forecast import smooth_forecast
from carbonshift.core.model import Battery, Capacity, Fallback, Job, PlannerOptions, RegionSignals
from carbonshift.core.plan import Plan, Reason, ReasonCode
from carbonshift.core.single import plan_job
from carbonshift.core.snapshot import Snapshot, build_snapshot

__all__ = [
    "Battery",
    "BatchOrder",
    "Bound",
    "Capacity",
    "Fallback",
    "Job",
    "Plan",
    "PlannerOptions",
    "Reason",
    "ReasonCode",
    "RegionSignals",
    "Snapshot",
    "build_snapshot",
    "emissions_lower_bound",
    "plan_interruptible_lp",
    "plan_job",
    "plan_jobs",
    "smooth_forecast",
]
