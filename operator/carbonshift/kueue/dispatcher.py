"""carbonshift as a MultiKueue external dispatcher: which worker cluster(s) a Workload goes to.

Kueue's manager copies a Workload only to the clusters in ``status.nominatedClusterNames``; this
room nominates one worker in the plan's region that is ready and has room, so exactly one remote
copy is made. The nomination is a merge patch carrying the resourceVersion read: if a worker
reserved the Workload meanwhile (Kueue set clusterName), the write fails with 409 instead of
nominating again. Kueue clears the list itself once a worker reserves it; that needs Kueue's
``WorkloadRequestUseMergePatch`` feature gate (docs/kueue.md, the field-manager trap).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from carbonshift.controller.events import post_event
from carbonshift.controller.kube import KubeApi, KubeError
from carbonshift.kueue.workloads import Workload, nomination_patch, workloads_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Worker:
    """A MultiKueueCluster as the dispatcher sees it."""

    name: str
    region: str
    # Kueue's MultiKueueCluster condition Active: MultiKueue reaches the worker with its own
    # kubeconfig, so this (not carbonshift's MemberCluster probe) says whether a copy can be made.
    active: bool
    capacity: int | None  # MemberCluster spec.capacity.maxConcurrentJobs


def pick_worker(workers: list[Worker], region: str, load: Mapping[str, int]) -> Worker | None:
    """The least loaded usable worker of ``region`` that has room (ties: by name)."""
    usable = [w for w in workers if w.region == region and w.active
              and (w.capacity is None or load.get(w.name, 0) < w.capacity)]
    return min(usable, key=lambda w: (load.get(w.name, 0), w.name), default=None)


def regions_with_room(workers: list[Worker], load: Mapping[str, int]) -> set[str]:
    return {w.region for w in workers if pick_worker(workers, w.region, load) is not None}


class Dispatcher:
    def __init__(self, hub: KubeApi) -> None:
        self.hub = hub

    async def nominate(self, workload: Workload, worker: Worker, why: str) -> bool:
        try:
            await self.hub.merge_patch(workloads_path(workload.namespace, workload.name, "status"),
                                       nomination_patch(workload, [worker.name]))
        except KubeError as exc:
            if exc.conflict or exc.not_found:  # changed meanwhile: the next cycle reads it again
                return False
            log.warning("nominating %s for %s: %s", worker.name, workload.key, exc)
            return False
        await post_event(self.hub, workload.body_ref(), "CarbonDispatched",
                         f"carbonshift nominated worker cluster {worker.name} (region {worker.region}): {why}")
        return True
