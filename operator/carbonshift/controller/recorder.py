"""Events leave the job's own writes: a bounded queue drained by a few workers.

An Event explains a decision to people; it is not the decision. Posting them inline put one or
two extra round trips in front of every dispatch. Like client-go's event broadcaster, the queue
is bounded and drops (and counts, ``carbonshift_events_dropped_total``) when a burst outruns the
API server, so Events can never hold back or exhaust the operator.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from carbonshift.api.common import API_VERSION
from carbonshift.controller.events import post_event
from carbonshift.controller.kube import KubeApi
from carbonshift.controller.metrics import Metrics

log = logging.getLogger(__name__)

QUEUE_SIZE = 2000
WORKERS = 4


class EventRecorder:
    def __init__(self, hub: KubeApi, metrics: Metrics, workers: int = WORKERS, size: int = QUEUE_SIZE) -> None:
        self.hub = hub
        self.metrics = metrics
        self._queue: asyncio.Queue[tuple[dict[str, Any], str, str, bool]] = asyncio.Queue(maxsize=size)
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []

    def record(self, obj: dict[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
        # Only what an Event needs: the queue must not pin whole job bodies in memory.
        meta = obj.get("metadata") or {}
        involved = {"apiVersion": obj.get("apiVersion") or API_VERSION,
                    "kind": obj.get("kind") or "CarbonAwareJob",
                    "metadata": {k: meta.get(k) for k in ("name", "namespace", "uid")}}
        try:
            self._queue.put_nowait((involved, reason, message, warning))
        except asyncio.QueueFull:
            self.metrics.events_dropped.inc()
            log.debug("event queue full: dropped %s on %s/%s", reason, meta.get("namespace"), meta.get("name"))
        self._start()

    def _start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._work(), name=f"events-{i}") for i in range(self._workers)]

    async def _work(self) -> None:
        while True:
            obj, reason, message, warning = await self._queue.get()
            try:
                await post_event(self.hub, obj, reason, message, warning=warning)
            finally:
                self._queue.task_done()

    async def aclose(self, timeout: float = 10.0) -> None:
        """Posts what is queued (bounded in time), then stops the workers."""
        if self._tasks:
            try:
                await asyncio.wait_for(self._queue.join(), timeout)
            except TimeoutError:
                log.info("%d Events not posted at shutdown", self._queue.qsize())
        for task in self._tasks:
            task.cancel()
        self._tasks = []
