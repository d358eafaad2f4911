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

A mixin of ``Scheduler`` (cycle.py), which runs these as tasks beside the cycle.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Coroutine
from typing import Any

from pydantic import ValidationError

from carbonshift.api import MemberCluster
from carbonshift.controller import dispatch
from carbonshift.controller.kube import KubeApi, KubeError
from carbonshift.controller.manifests import ANNOTATION_SOURCE, FINALIZER_RECORD, LABEL_JOB_UID, hub_selector
from carbonshift.controller.memberwatch import MemberJobCache
from carbonshift.controller.members import MemberRegistry
from carbonshift.controller.paths import ALL_JOBS, CARBONAWAREJOBS, caj_path
from carbonshift.controller.world import FINALIZER, LEGACY_FINALIZER, TERMINAL, World

log = logging.getLogger(__name__)

ORPHAN_SCAN_S = 2.0  # member Jobs are checked for a deleted CarbonAwareJob this often
CLEANUP_RETRY_S = 10.0  # a deleted job whose copy cannot be removed yet is retried this often
HUB_RELIST_S = 10.0  # the hub's CarbonAwareJobs are listed (metadata only) this often to catch lost deletions
PARTIAL_METADATA = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"


class Cleanup:
    """Orphan collection and the hub re-list (the Scheduler provides these attributes)."""

    hub: KubeApi
    registry: MemberRegistry
    world: World
    hub_id: str
    _inflight: dict[str, asyncio.Task[None]]
    _member_caches: dict[str, MemberJobCache]
    _cleanup_after: dict[str, float]
    _orphans_scanned: float
    _hub_listed: float

    def _spawn_work(self, uid: str, work: Coroutine[Any, Any, None], what: str | None = None) -> None:
        raise NotImplementedError

    def wake(self) -> None:
        raise NotImplementedError

    async def _delete_member_job(self, member: MemberCluster, member_job: dict[str, Any], uid: str | None) -> None:
        raise NotImplementedError

    # ----- deletion ------------------------------------------------------------------------
    def _finalize_deleted(self) -> None:
        """Deleted jobs that still carry a finalizer of an earlier version: remove their copies, then it.

        This version adds no finalizer: a deleted job's member Job is found by the orphan
        collection in the next cycle (after the hub confirms the job is gone). A finalizer would
        cost one more write per job and make deletions hang while the operator is down.
        """
        now = time.monotonic()
        for _, body in self.world.active_jobs():
            meta = body.get("metadata") or {}
            uid = str(meta.get("uid"))
            finalizers = meta.get("finalizers") or []
            if (not meta.get("deletionTimestamp") or uid in self._inflight
                    or not ({FINALIZER, LEGACY_FINALIZER} & set(finalizers))
                    or self._cleanup_after.get(uid, 0.0) > now):
                continue
            self._spawn_work(uid, self._finalize(body), f"{meta.get('namespace')}/{meta.get('name')}")

    async def _finalize(self, body: dict[str, Any]) -> None:
        meta = body["metadata"]
        uid = str(meta["uid"])
        remaining = await self.remove_member_jobs(body)
        if remaining:
            self._cleanup_after[uid] = time.monotonic() + CLEANUP_RETRY_S
            log.warning("cannot reach %s to delete the copy of %s/%s; retrying in %.0f s", ", ".join(remaining),
                        meta["namespace"], meta["name"], CLEANUP_RETRY_S)
            return
        self._cleanup_after.pop(uid, None)
        for cache in self._member_caches.values():
            cache.forget(uid)
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
                listed = await api.get(ALL_JOBS, {"labelSelector": f"{hub_selector(self.hub_id)},{LABEL_JOB_UID}={uid}"})
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
    def _collect_orphans(self, view: Any) -> None:
        """Member Jobs whose CarbonAwareJob no longer exists are deleted (after checking the hub).

        This is how a deleted job's copy goes away (there is no finalizer), so it must not wait:
        each orphan is checked and deleted by its own task, beside the cycle.
        """
        if time.monotonic() - self._orphans_scanned < ORPHAN_SCAN_S:
            return  # a scan walks every member Job: not on every cycle
        self._orphans_scanned = time.monotonic()
        known = self.world.uids
        for name, jobs in view.member_jobs.items():
            for uid, job in jobs.items():
                key = f"orphan:{name}:{uid}"
                if key in self._inflight or name not in view.healthy:
                    continue
                if uid not in known:
                    self._spawn_work(key, self._remove_orphan(view.healthy[name], uid, job))
                elif FINALIZER_RECORD in (job["metadata"].get("finalizers") or []) and self._recorded(uid):
                    # The hub has the end (a crash came between that write and the release): let it go.
                    self._spawn_work(key, self._release(view.healthy[name], job))

    def _recorded(self, uid: str) -> bool:
        body = self.world.jobs.get(self.world.uids[uid]) or {}
        return (body.get("status") or {}).get("phase") in TERMINAL

    async def _release(self, member: MemberCluster, job: dict[str, Any]) -> None:
        try:
            api = await self.registry.api(member)
            await dispatch.release(api, job["metadata"]["namespace"], job["metadata"]["name"])
        except KubeError as exc:
            log.info("releasing %s/%s in %s: %s", job["metadata"]["namespace"], job["metadata"]["name"],
                     member.metadata.name, exc)

    def _relist_hub(self) -> None:
        """Every HUB_RELIST_S: the hub's CarbonAwareJobs (metadata only); jobs it no longer has are deleted.

        A watch that broke while a job was deleted (the hub API server restarted) re-lists without
        a DELETED event; without this, that job's copy would keep running until a restart.
        """
        if time.monotonic() - self._hub_listed < HUB_RELIST_S or "hub-relist" in self._inflight:
            return
        self._hub_listed = time.monotonic()
        self._spawn_work("hub-relist", self._sweep_hub(set(self.world.uids)))

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
            self._orphans_scanned = 0.0
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
        await self._delete_member_job(member, job, uid)
