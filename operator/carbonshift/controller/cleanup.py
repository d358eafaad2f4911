"""Cleanup, beside the scheduling cycle: what is left in the members of jobs that are gone.

- a member Job whose CarbonAwareJob no longer exists (checked on the hub first) is deleted and
  its record-completion finalizer removed: this is how a deleted job's copy goes away;
- a finished job whose copy still holds the finalizer (a crash came between the status write
  and its removal) is released;
- every HUB_RELIST_S the hub's CarbonAwareJobs are listed (metadata only): a job the hub no
  longer has is forgotten even when no watch event said so (a watch that broke while it was
  deleted re-lists without a DELETED event), so the orphan collection removes its copy;
- deleted jobs that still carry the finalizer of an earlier version get their copies removed,
  then the finalizer.

The scheduler (cycle/scheduler.py) calls these every cycle; the work runs as tasks beside it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from carbonshift.api import MemberCluster
from carbonshift.api import TERMINAL_PHASES
from carbonshift.controller import dispatch
from carbonshift.controller.clock import Clock
from carbonshift.controller.kube import KubeApi, KubeError
from carbonshift.controller.manifests import ANNOTATION_SOURCE, FINALIZER_RECORD, LABEL_JOB_UID, hub_selector
from carbonshift.controller.memberjobs import MemberJobs
from carbonshift.controller.members import MemberRegistry
from carbonshift.controller.paths import ALL_JOBS, CARBONAWAREJOBS, caj_path
from carbonshift.controller.tasks import Tasks
from carbonshift.controller.world import FINALIZER, LEGACY_FINALIZER, World

log = logging.getLogger(__name__)

ORPHAN_SCAN_S = 2.0  # member Jobs are checked for a deleted CarbonAwareJob this often
CLEANUP_RETRY_S = 10.0  # a deleted job whose copy cannot be removed yet is retried this often
HUB_RELIST_S = 10.0  # the hub's CarbonAwareJobs are listed (metadata only) this often to catch lost deletions
PARTIAL_METADATA = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


class Cleanup:
    """Orphan collection, the hub re-list and the cleanup of jobs deleted with an old finalizer."""

    def __init__(self, hub: KubeApi, world: World, registry: MemberRegistry, member_jobs: MemberJobs, tasks: Tasks,
                 clock: Clock, wake: Callable[[], None]) -> None:
        self.hub = hub
        self.world = world
        self.registry = registry
        self.member_jobs = member_jobs
        self.tasks = tasks
        self.clock = clock
        self.wake = wake  # runs a cycle soon
        self._cleanup_after: dict[str, float] = {}  # deleted job uid -> monotonic time of next try
        self._orphans_scanned = float("-inf")  # monotonic time of the last orphan scan
        self._hub_listed = float("-inf")  # monotonic time of the last metadata list of the hub's jobs

    # ----- deletion ------------------------------------------------------------------------
    def finalize_deleted(self) -> None:
        """Deleted jobs that still carry a finalizer of an earlier version: remove their copies, then it.

        This version adds no finalizer: a deleted job's member Job is found by the orphan
        collection in the next cycle (after the hub confirms the job is gone). A finalizer would
        cost one more write per job and make deletions hang while the operator is down.
        """
        now = self.clock.monotonic()
        for _, body in self.world.active_jobs():
            meta = body.get("metadata") or {}
            uid = str(meta.get("uid"))
            finalizers = meta.get("finalizers") or []
            if (not meta.get("deletionTimestamp") or self.tasks.busy(uid)
                    or not ({FINALIZER, LEGACY_FINALIZER} & set(finalizers))
                    or self._cleanup_after.get(uid, float("-inf")) > now):
                continue
            self.tasks.spawn(uid, self._finalize(body), f"{meta.get('namespace')}/{meta.get('name')}")

    async def _finalize(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        uid = str(meta["uid"])
        remaining = await self.remove_member_jobs(body)
        if remaining:
            self._cleanup_after[uid] = self.clock.monotonic() + CLEANUP_RETRY_S
            log.warning("cannot reach %s to delete the copy of %s/%s; retrying in %.0f s", ", ".join(remaining),
                        meta["namespace"], meta["name"], CLEANUP_RETRY_S)
            return
        self._cleanup_after.pop(uid, None)
        self.member_jobs.forget(uid)
        keep = [f for f in meta.get("finalizers") or [] if f not in (FINALIZER, LEGACY_FINALIZER)]
        try:
            result = await self.hub.merge_patch(caj_path(meta["namespace"], meta["name"]), {
                "metadata": {"finalizers": keep or None, "resourceVersion": meta.get("resourceVersion")}})
        except KubeError as exc:
            if not (exc.not_found or exc.conflict):  # conflict: the next cycle sees the newer object
                log.warning("removing the finalizer of %s/%s: %s", meta["namespace"], meta["name"], exc)
            return
        if result:
            self.world.remember(result)

    async def remove_member_jobs(self, body: dict[str, Any]) -> list[str]:
        """Deletes every copy of a deleted CarbonAwareJob; returns clusters that must be retried.

        Only the cluster its status names must be reachable; a copy in another unreachable
        cluster (e.g. left by a crash) is removed later by the orphan collection.
        """
        uid = str(body["metadata"]["uid"])
        ref = (body.get("status") or {}).get("memberJob") or {}
        retry = []
        for name, member_body in sorted(self.world.members.items()):
            try:
                member = MemberCluster.model_validate(member_body)
                api = await self.registry.api(member)
                listed = await api.get(ALL_JOBS, {"labelSelector": f"{hub_selector(self.member_jobs.hub_id)},"
                                                                   f"{LABEL_JOB_UID}={uid}"})
                for job in listed.get("items") or []:
                    await dispatch.delete(api, job["metadata"]["namespace"], job["metadata"]["name"])
                    log.info("deleted Job %s in %s for deleted %s/%s", job["metadata"]["name"], name,
                             body["metadata"]["namespace"], body["metadata"]["name"])
            except ValidationError:
                continue
            except KubeError as exc:
                if exc.not_found:
                    continue
                if ref.get("cluster") == name:
                    retry.append(name)
        return retry

    # ----- housekeeping ----------------------------------------------------------------------
    def collect_orphans(self, view: Any) -> None:
        """Member Jobs whose CarbonAwareJob no longer exists are deleted (after checking the hub).

        This is how a deleted job's copy goes away (there is no finalizer), so it must not wait:
        each orphan is checked and deleted by its own task, beside the cycle.
        """
        if self.clock.monotonic() - self._orphans_scanned < ORPHAN_SCAN_S:
            return  # a scan walks every member Job: not on every cycle
        self._orphans_scanned = self.clock.monotonic()
        known = self.world.uids
        for name, jobs in view.member_jobs.items():
            for uid, job in jobs.items():
                key = f"orphan:{name}:{uid}"
                if self.tasks.busy(key) or name not in view.healthy:
                    continue
                if uid not in known:
                    self.tasks.spawn(key, self._remove_orphan(view.healthy[name], uid, job))
                elif FINALIZER_RECORD in (job["metadata"].get("finalizers") or []) and self._recorded(uid):
                    # The hub has the end (a crash came between that write and the release): let it go.
                    self.tasks.spawn(key, self._release(view.healthy[name], job))

    def _recorded(self, uid: str) -> bool:
        body = self.world.jobs.get(self.world.uids[uid]) or {}
        return (body.get("status") or {}).get("phase") in TERMINAL_PHASES

    async def _release(self, member: MemberCluster, job: dict[str, Any]) -> None:
        try:
            await self.member_jobs.release(member, job)
        except KubeError as exc:
            log.info("releasing %s/%s in %s: %s", job["metadata"]["namespace"], job["metadata"]["name"],
                     member.metadata.name, exc)

    def relist_hub(self) -> None:
        """Every HUB_RELIST_S: the hub's CarbonAwareJobs (metadata only); jobs it no longer has are deleted.

        A watch that broke while a job was deleted (the hub API server restarted) re-lists without
        a DELETED event; without this, that job's copy would keep running until a restart.
        """
        if self.clock.monotonic() - self._hub_listed < HUB_RELIST_S or self.tasks.busy("hub-relist"):
            return
        self._hub_listed = self.clock.monotonic()
        self.tasks.spawn("hub-relist", self._sweep_hub(set(self.world.uids)))

    async def _sweep_hub(self, known_before: set[str]) -> None:
        listed: set[str] = set()
        query: dict[str, Any] = {"limit": 5000}
        while True:
            page = await self.hub.request("GET", CARBONAWAREJOBS, query=query,
                                          accept=PARTIAL_METADATA)
            listed.update(str((item.get("metadata") or {}).get("uid")) for item in page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                break
            query = {**query, "continue": token}
        gone = self.world.forget_missing(known_before, listed)
        if gone:
            log.info("%d CarbonAwareJobs are gone from the hub without a watch event (e.g. %s/%s): their copies "
                     "are collected as orphans", len(gone), *gone[0])
            self._orphans_scanned = float("-inf")
            self.wake()

    async def _remove_orphan(self, member: MemberCluster, uid: str, job: dict[str, Any]) -> None:
        source = (job["metadata"].get("annotations") or {}).get(ANNOTATION_SOURCE, "/")
        namespace, _, caj_name = source.partition("/")
        try:
            body = await self.hub.get(caj_path(namespace, caj_name))
            if str(body["metadata"].get("uid")) == uid:
                return  # it exists: the watch has not shown it to us yet
        except KubeError as exc:
            if not exc.not_found:
                return
        log.info("deleting orphan Job %s/%s in %s (CarbonAwareJob %s is gone)",
                 job["metadata"]["namespace"], job["metadata"]["name"], member.metadata.name, source)
        await self.member_jobs.delete(member, job, uid)
