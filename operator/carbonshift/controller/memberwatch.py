"""The Jobs this hub's carbonshift owns in one member cluster, kept current by list-then-watch.

Jobs run in the namespace of their CarbonAwareJob (or the one the admin maps it to), so the
member is listed and watched cluster-wide, with a selector that matches only the Jobs carrying
this hub's ``carbonshift.io/hub`` label: another hub's Jobs are never seen, adopted or deleted.

Listing every member's Jobs in every cycle cost a full LIST per member per cycle: megabytes of
JSON at thousands of jobs, parsed again and again. Instead each member is listed once (in
pages) and then watched; only the few fields the scheduler reads are kept per Job.

The scheduler also records its own writes here at once (``record``/``forget``): the watch event
for a Job it just created may arrive after the next cycle, and that cycle must not think the
Job is missing. When the view is wrong anyway, deterministic Job names make the repair
idempotent (a second create is 409 and the existing Job is adopted).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from carbonshift.controller.kube import KubeApi, KubeError
from carbonshift.controller.manifests import ANNOTATION_SOURCE, FINALIZER_RECORD, LABEL_JOB_UID, LABEL_MEMBER
from carbonshift.controller.paths import ALL_JOBS

log = logging.getLogger(__name__)

PAGE = 500
WATCH_SECONDS = 240
RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)


def slim_member_job(job: dict[str, Any]) -> dict[str, Any]:
    """The fields of a member Job the scheduler reads (progress, identity, timing, suspend)."""
    meta = job.get("metadata") or {}
    labels = meta.get("labels") or {}
    status = job.get("status") or {}
    slim_status = {k: status[k] for k in ("active", "ready", "succeeded", "failed", "startTime", "completionTime")
                   if status.get(k) is not None}
    if status.get("conditions"):
        slim_status["conditions"] = [{"type": c.get("type"), "status": c.get("status")}
                                     for c in status["conditions"]]
    slim_meta = {"name": meta.get("name"), "namespace": meta.get("namespace"), "uid": meta.get("uid"),
                 "resourceVersion": meta.get("resourceVersion"),
                 # Only ours: whether the Job still waits for the hub to record its end.
                 "finalizers": [f for f in meta.get("finalizers") or [] if f == FINALIZER_RECORD]}
    if meta.get("deletionTimestamp"):
        slim_meta["deletionTimestamp"] = meta["deletionTimestamp"]
    return {
        "metadata": {**slim_meta,
                     "labels": {k: labels[k] for k in (LABEL_JOB_UID, LABEL_MEMBER) if k in labels},
                     "annotations": {k: v for k, v in (meta.get("annotations") or {}).items() if k == ANNOTATION_SOURCE}},
        "spec": {"suspend": bool((job.get("spec") or {}).get("suspend"))},
        "status": slim_status,
    }


class MemberJobCache:
    """This hub's Jobs in one member (all namespaces), by CarbonAwareJob UID."""

    def __init__(self, member: str, selector: str, api: Callable[[], Awaitable[KubeApi]]) -> None:
        self.member = member
        self.selector = selector
        self._api = api
        self.jobs: dict[str, dict[str, Any]] = {}
        self.synced = asyncio.Event()
        self.error: str | None = None
        self._task: asyncio.Task[None] | None = None

    # ----- the scheduler's own writes --------------------------------------------------------
    def record(self, job: dict[str, Any]) -> None:
        uid = ((job.get("metadata") or {}).get("labels") or {}).get(LABEL_JOB_UID)
        if uid and self._belongs(job):
            self.jobs[uid] = slim_member_job(job)

    def forget(self, uid: str) -> None:
        self.jobs.pop(uid, None)

    def _belongs(self, job: dict[str, Any]) -> bool:
        # Two MemberClusters may share one physical cluster: a Job made for the other is not ours.
        return bool(((job.get("metadata") or {}).get("labels") or {}).get(LABEL_MEMBER, self.member) == self.member)

    # ----- list and watch ---------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name=f"member-jobs-{self.member}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):  # stopping: its outcome no longer matters
                pass

    async def _run(self) -> None:
        failures = 0
        resource_version: str | None = None
        while True:
            try:
                api = await self._api()
                if resource_version is None:
                    resource_version = await self._list(api)
                    self.error = None
                    self.synced.set()
                resource_version = await self._watch(api, resource_version)
                failures = 0
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # an API error, a broken stream, an unexpected answer: list again
                resource_version = None
                if isinstance(exc, KubeError) and exc.status == 410:  # our resourceVersion is too old
                    continue
                failures += 1
                message = str(exc) if isinstance(exc, KubeError) else \
                    f"{self.member}: watching Jobs: {type(exc).__name__}: {exc}"
                if failures >= 2:  # one dropped connection is routine; twice in a row is an outage
                    self.error = message
                    self.synced.clear()
                log.info("member %s Jobs: %s (attempt %d)", self.member, message, failures)
                await asyncio.sleep(RETRY_SECONDS[min(failures, len(RETRY_SECONDS)) - 1])

    async def _list(self, api: KubeApi) -> str:
        fresh: dict[str, dict[str, Any]] = {}
        query: dict[str, Any] = {"labelSelector": self.selector, "limit": PAGE}
        started = time.monotonic()
        while True:
            page = await api.get(ALL_JOBS, query)
            for job in page.get("items") or []:
                uid = ((job.get("metadata") or {}).get("labels") or {}).get(LABEL_JOB_UID)
                if uid and self._belongs(job):
                    fresh[uid] = slim_member_job(job)
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
            query = {**query, "continue": token}
        self.jobs = fresh
        log.debug("member %s: listed %d Jobs in %.2f s", self.member, len(fresh), time.monotonic() - started)
        return str((page.get("metadata") or {}).get("resourceVersion") or "0")

    async def _watch(self, api: KubeApi, resource_version: str) -> str:
        query = {"labelSelector": self.selector, "watch": "true", "resourceVersion": resource_version,
                 "allowWatchBookmarks": "true", "timeoutSeconds": WATCH_SECONDS}
        async for event in api.watch(ALL_JOBS, query):
            kind = event.get("type")
            obj = event.get("object") or {}
            if kind == "ERROR":
                raise KubeError(int(obj.get("code") or 0), f"{self.member}: watch: {obj.get('message')}")
            resource_version = str((obj.get("metadata") or {}).get("resourceVersion") or resource_version)
            if kind == "BOOKMARK":
                continue
            uid = ((obj.get("metadata") or {}).get("labels") or {}).get(LABEL_JOB_UID)
            if not uid or not self._belongs(obj):
                continue
            if kind == "DELETED":
                known = self.jobs.get(uid)
                if known is None or (known["metadata"].get("uid") in (None, (obj.get("metadata") or {}).get("uid"))):
                    self.jobs.pop(uid, None)
            else:
                self.jobs[uid] = slim_member_job(obj)
        return resource_version
