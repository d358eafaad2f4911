"""Leader election with a coordination.k8s.io Lease, so that of several replicas only one acts.

The leader renews the lease every third of its duration; if it cannot renew before the lease
expires it stops acting (and the process exits, so Kubernetes restarts it as a follower). On a
clean shutdown (SIGTERM) the leader releases the lease (no holder), so a follower takes over at
its next poll (at most ``retry_seconds``) instead of waiting for the lease to expire. Lease
times use the real clock, never the demo's accelerated one.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from carbonshift.controller.kube import KubeApi, KubeError
from carbonshift.controller.paths import lease_path
from carbonshift.timefmt import micro_z, parse_iso

log = logging.getLogger(__name__)


class LeaderElector:
    def __init__(self, hub: KubeApi, namespace: str, name: str, identity: str, lease_seconds: float) -> None:
        self.hub = hub
        self.path = lease_path(namespace, name)
        self.collection = lease_path(namespace)
        self.name = name
        self.identity = identity
        self.lease_seconds = lease_seconds
        # How often a follower looks at the lease (client-go's retry period: 2 s for 15 s leases).
        self.retry_seconds = min(2.0, lease_seconds / 3)
        self.leading = False
        # Monotonic time of the last answer from the hub's API server (readiness).
        self.last_contact: float | None = None

    def _spec(self, now: datetime, acquired: str | None, transitions: int) -> dict[str, Any]:
        return {"holderIdentity": self.identity, "leaseDurationSeconds": int(self.lease_seconds),
                "acquireTime": acquired or micro_z(now), "renewTime": micro_z(now),
                "leaseTransitions": transitions}

    def _contact(self) -> None:
        self.last_contact = asyncio.get_running_loop().time()

    async def try_acquire(self) -> bool:
        now = datetime.now(timezone.utc)
        try:
            lease = await self.hub.get(self.path)
            self._contact()
        except KubeError as exc:
            if not exc.not_found:
                raise
            self._contact()
            try:
                await self.hub.request("POST", self.collection, {
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name}, "spec": self._spec(now, None, 0)})
                return True
            except KubeError as create_exc:
                if create_exc.conflict:
                    return False
                raise
        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity")
        renewed = parse_iso(spec["renewTime"]) if spec.get("renewTime") else None
        duration = timedelta(seconds=float(spec.get("leaseDurationSeconds") or self.lease_seconds))
        expired = renewed is None or renewed + duration < now
        if holder and holder != self.identity and not expired:  # no holder: released on shutdown
            return False
        transitions = int(spec.get("leaseTransitions") or 0) + (0 if holder == self.identity else 1)
        acquired = spec.get("acquireTime") if holder == self.identity else None
        lease["spec"] = self._spec(now, acquired, transitions)
        try:
            await self.hub.request("PUT", self.path, lease)  # resourceVersion makes this a compare-and-swap
            self._contact()
            return True
        except KubeError as exc:
            if exc.conflict:
                self._contact()
                return False
            raise

    async def release(self) -> None:
        """Gives the lease up (no holder, expired at once) if this process still holds it."""
        try:
            lease = await self.hub.get(self.path)
            spec = lease.get("spec") or {}
            if spec.get("holderIdentity") != self.identity:
                return
            now = micro_z(datetime.now(timezone.utc))
            lease["spec"] = {"leaseDurationSeconds": 1, "acquireTime": now, "renewTime": now,
                             "leaseTransitions": int(spec.get("leaseTransitions") or 0)}
            await self.hub.request("PUT", self.path, lease)
            log.info("released the lease %s", self.name)
        except KubeError as exc:  # it expires by itself after lease_seconds
            log.warning("releasing the lease %s: %s", self.name, exc)
        finally:
            self.leading = False

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Waits until this process leads (True) or ``stop`` is set (False)."""
        logged = False
        while not stop.is_set():
            try:
                if await self.try_acquire():
                    log.info("leading as %s (lease %s)", self.identity, self.name)
                    self.leading = True
                    return True
            except KubeError as exc:
                log.warning("leader election: %s", exc)
            if not logged:
                log.info("another replica leads; waiting as a follower")
                logged = True
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.retry_seconds)
            except TimeoutError:
                pass
        return False

    async def keep(self, stop: asyncio.Event, lost: asyncio.Event) -> None:
        """Renews the lease until ``stop``; sets ``lost`` when it could not be renewed in time."""
        last_ok = asyncio.get_running_loop().time()
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.lease_seconds / 3)
                return
            except TimeoutError:
                pass
            try:
                if await self.try_acquire():
                    last_ok = asyncio.get_running_loop().time()
                    continue
            except KubeError as exc:
                log.warning("renewing the lease: %s", exc)
            if asyncio.get_running_loop().time() - last_ok > self.lease_seconds * 0.8:
                log.error("lost the lease %s; stopping", self.name)
                self.leading = False
                lost.set()
                return
