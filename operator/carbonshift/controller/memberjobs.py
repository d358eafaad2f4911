"""The operator's hands in member clusters: member Jobs created, adopted, suspended, released,
deleted, through ``dispatch`` and each member's client, with the watched view of them kept current.

Every member's Jobs of this hub are listed once and then watched (``memberwatch``); what the
operator itself writes is recorded in that view at once, so the next cycle does not think a Job
it just created is missing. Failed operations are counted (``carbonshift_dispatch_errors_total``).
"""

from __future__ import annotations

import logging
from typing import Any

from carbonshift.api import TERMINAL_PHASES, MemberCluster
from carbonshift.api.common import PodSecurityLevel
from carbonshift.controller import dispatch
from carbonshift.controller.kube import KubeApi, KubeError
from carbonshift.controller.manifests import ANNOTATION_SOURCE, build_member_job, hub_selector, job_progress
from carbonshift.controller.members import MemberRegistry
from carbonshift.controller.memberwatch import MemberJobCache
from carbonshift.controller.metrics import Metrics
from carbonshift.controller.paths import job_path

log = logging.getLogger(__name__)


class MemberJobs:
    def __init__(self, registry: MemberRegistry, metrics: Metrics, pod_security_level: str) -> None:
        self.registry = registry
        self.metrics = metrics
        self.pod_security_level = pod_security_level  # the admin's (operator setting)
        self.hub_id = ""  # set once known; nothing is done in a member before
        self._caches: dict[str, MemberJobCache] = {}
        self._seen: dict[str, MemberCluster] = {}  # member -> its model in the last cycle

    # ----- the watched view --------------------------------------------------------------------
    def cache(self, member: MemberCluster) -> MemberJobCache:
        """The member's list-then-watch view of this hub's Jobs there (all namespaces), started."""
        name = str(member.metadata.name)
        self._seen[name] = member  # a reconnect uses its newest kubeconfig reference
        cache = self._caches.get(name)
        if cache is None:

            async def api() -> KubeApi:
                return await self.registry.api(self._seen[name])

            cache = MemberJobCache(name, hub_selector(self.hub_id), api)
            self._caches[name] = cache
        cache.start()
        return cache

    async def keep_only(self, names: set[str]) -> None:
        """Stops watching members that are gone."""
        for gone in set(self._caches) - names:
            self._seen.pop(gone, None)
            await self._caches.pop(gone).stop()

    async def stop(self) -> None:
        for cache in self._caches.values():
            await cache.stop()

    def forget(self, uid: str) -> None:
        """A deleted job's copies are gone from every member's view."""
        for cache in self._caches.values():
            cache.forget(uid)

    def holding(self, uid: str) -> list[str]:
        """Members whose view holds a copy of job ``uid``, seen or made by this process (also
        members out of reach now: what was last known of them)."""
        return [name for name, cache in self._caches.items() if uid in cache.jobs]

    def active_of_namespace(self, member: MemberCluster, namespace: str, *, besides: str) -> int | None:
        """Active (not finished) Jobs of hub namespace ``namespace`` in ``member``, other than job
        ``besides``; None when the member is not watched. The live view (it holds our own creations
        at once), not a cycle's snapshot."""
        cache = self._caches.get(str(member.metadata.name))
        if cache is None:
            return None
        prefix = f"{namespace}/"
        return sum(1 for uid, job in cache.jobs.items()
                   if uid != besides and job_progress(job) not in TERMINAL_PHASES
                   and (job["metadata"].get("annotations") or {}).get(ANNOTATION_SOURCE, "").startswith(prefix))

    def _record(self, member: MemberCluster, job: dict[str, Any] | None) -> None:
        cache = self._caches.get(str(member.metadata.name))
        if cache is not None and job:
            cache.record(job)

    # ----- operations --------------------------------------------------------------------------
    async def create(self, member: MemberCluster, body: dict[str, Any], *, suspend: bool) -> dict[str, Any]:
        """The member Job of CarbonAwareJob ``body`` in ``member`` (asked first, then created or adopted).

        Raises ``dispatch.Refused`` when the member does not take it now, ``KubeError`` otherwise.
        """
        manifest = await self.prepare(member, body, suspend=suspend)
        return await self.send(member, manifest, str(body["metadata"]["uid"]))

    async def prepare(self, member: MemberCluster, body: dict[str, Any], *, suspend: bool) -> dict[str, Any]:
        """The member Job's manifest once the member's admission accepts it (dry runs; nothing is
        created but a missing namespace the admin allowed). Raises ``dispatch.Refused``, ``KubeError``."""
        api = await self.registry.api(member)
        namespace = member.spec.member_namespace(str(body["metadata"]["namespace"]))
        manifest = build_member_job(body, namespace=namespace, member=str(member.metadata.name),
                                    region=member.spec.region, hub_id=self.hub_id, suspend=suspend)
        level = str(PodSecurityLevel.stricter(self.pod_security_level, member.spec.pod_security_level))
        await dispatch.prepare(api, str(member.metadata.name), manifest, create_namespace=member.spec.create_namespaces,
                               level=level)
        return manifest

    async def send(self, member: MemberCluster, manifest: dict[str, Any], uid: str) -> dict[str, Any]:
        """Creates the prepared Job (or adopts this hub's copy of job ``uid`` at its name). Raises
        ``KubeError`` (``dispatch.Unconfirmed``: sent, no answer)."""
        api = await self.registry.api(member)
        created = await dispatch.create(api, str(member.metadata.name), manifest, uid, self.hub_id)
        self._record(member, created)
        return created

    def failed(self, member: MemberCluster, operation: str) -> None:
        self.metrics.dispatch_errors.labels(cluster=member.metadata.name, operation=operation).inc()

    async def fetch(self, member: MemberCluster, ref: dict[str, Any], uid: str) -> dict[str, Any] | None:
        """The member's answer about the copy ``ref`` (``status.memberJob``) names, which its watch does
        not show (it may not have shown it yet, or it predates the hub label)."""
        api = await self.registry.api(member)
        found = await dispatch.fetch(api, ref["namespace"], ref["name"], uid, self.hub_id, ref.get("uid"))
        self._record(member, found)
        return found

    async def suspend(self, member: MemberCluster, job: dict[str, Any], value: bool) -> None:
        """Sets the Job's spec.suspend; raises KubeError (counted)."""
        meta = job["metadata"]
        api = await self.registry.api(member)
        try:
            patched = await api.merge_patch(job_path(meta["namespace"], meta["name"]), {"spec": {"suspend": value}})
        except KubeError:
            self.failed(member, "suspend")
            raise
        self._record(member, patched)

    async def delete(self, member: MemberCluster, job: dict[str, Any], uid: str | None) -> None:
        """Deletes the Job and lets it go (its finalizer removed); a failure is counted and logged."""
        meta = job["metadata"]
        try:
            api = await self.registry.api(member)
            await dispatch.delete(api, meta["namespace"], meta["name"])
            cache = self._caches.get(str(member.metadata.name))
            if cache is not None and uid is not None:
                cache.forget(uid)
        except KubeError as exc:
            self.failed(member, "delete")
            log.warning("deleting %s/%s in %s: %s", meta["namespace"], meta["name"], member.metadata.name, exc)

    async def release(self, member: MemberCluster, job: dict[str, Any]) -> None:
        """Removes the record-completion finalizer (the hub has recorded the end); raises KubeError."""
        api = await self.registry.api(member)
        await dispatch.release(api, job["metadata"]["namespace"], job["metadata"]["name"])

    async def pods_refused(self, member: MemberCluster, job: dict[str, Any]) -> str | None:
        api = await self.registry.api(member)
        return await dispatch.pods_refused(api, job["metadata"]["namespace"], str(job["metadata"].get("uid")))
