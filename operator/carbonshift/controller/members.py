"""Access to member clusters: an API client per MemberCluster (from its kubeconfig Secret on the
hub) and a health probe, so unreachable clusters are marked and avoided.

Kubeconfigs are never logged; errors name the Secret, not its content.
"""

from __future__ import annotations

import asyncio
import base64
import time
from dataclasses import dataclass, field

import yaml

from carbonshift.api import MemberCluster
from carbonshift.controller.kube import DEFAULT_MAX_CONNECTIONS, KubeApi, KubeError
from carbonshift.controller.kubeconfig import KubeconfigError, connection_from_kubeconfig
from carbonshift.controller.paths import secret_path


@dataclass
class Health:
    ready: bool
    message: str
    checked_at: float  # monotonic seconds
    last_seen_ok: float | None = None


# A kubeconfig Secret is re-read at most this often (rotation is picked up within a minute).
SECRET_TTL_S = 60.0
# A client replaced by a rotated kubeconfig is closed this much later, so calls in flight finish.
RETIRE_AFTER_S = 30.0


@dataclass
class MemberRegistry:
    hub: KubeApi
    probe_seconds: float = 10.0
    max_connections: int = DEFAULT_MAX_CONNECTIONS  # per member API server
    _clients: dict[str, tuple[str, KubeApi]] = field(default_factory=dict)
    _fresh: dict[str, tuple[float, str, KubeApi]] = field(default_factory=dict)  # name -> (read at, spec key, api)
    _health: dict[str, Health] = field(default_factory=dict)
    _retiring: set[asyncio.Task[None]] = field(default_factory=set)
    _reading: dict[str, asyncio.Lock] = field(default_factory=dict)  # member -> lock of its Secret read

    async def _kubeconfig(self, member: MemberCluster) -> dict[str, object] | None:
        ref = member.spec.kubeconfig_secret_ref
        if ref is None:
            return None  # the hub itself
        try:
            secret = await self.hub.get(secret_path(ref.namespace, ref.name))
        except KubeError as exc:
            raise KubeError(exc.status, f"kubeconfig Secret {ref.namespace}/{ref.name}: HTTP {exc.status}") from None
        raw = (secret.get("data") or {}).get(ref.key)
        if raw is None:
            raise KubeError(422, f"kubeconfig Secret {ref.namespace}/{ref.name} has no key {ref.key!r}")
        try:
            loaded = yaml.safe_load(base64.b64decode(raw))
        except (ValueError, yaml.YAMLError):
            raise KubeError(422, f"kubeconfig Secret {ref.namespace}/{ref.name} key {ref.key!r} is not a kubeconfig") from None
        if not isinstance(loaded, dict):
            raise KubeError(422, f"kubeconfig Secret {ref.namespace}/{ref.name} key {ref.key!r} is not a kubeconfig")
        return loaded

    async def api(self, member: MemberCluster) -> KubeApi:
        """The member's API client; its kubeconfig Secret is read at most every SECRET_TTL_S."""
        name = str(member.metadata.name)  # always set on objects from the API
        spec_key = member.spec.model_dump_json(include={"kubeconfig_secret_ref"})

        def fresh() -> KubeApi | None:
            known = self._fresh.get(name)
            return known[2] if known and known[1] == spec_key and time.monotonic() - known[0] < SECRET_TTL_S else None

        if (api := fresh()) is not None:
            return api
        # Single flight: when the TTL runs out, dozens of dispatches in flight ask at once; one
        # of them reads the Secret, the others wait for its answer.
        async with self._reading.setdefault(name, asyncio.Lock()):
            if (api := fresh()) is not None:
                return api
            api = await self._api_from_secret(member)
            self._fresh[name] = (time.monotonic(), spec_key, api)
            return api

    async def _api_from_secret(self, member: MemberCluster) -> KubeApi:
        name = str(member.metadata.name)  # always set on objects from the API
        kubeconfig = await self._kubeconfig(member)
        if kubeconfig is None:
            self.forget_client(name)
            return self.hub
        key = yaml.safe_dump(kubeconfig, sort_keys=True)
        cached = self._clients.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        ref = member.spec.kubeconfig_secret_ref
        assert ref is not None  # a kubeconfig was read from it
        try:
            # No file references: a Secret must not make the operator read (and send) its own files.
            connection = connection_from_kubeconfig(kubeconfig, allow_files=False)
            api = KubeApi(connection, name=name, max_connections=self.max_connections)
        except KubeconfigError as exc:  # its messages never contain credential values
            raise KubeError(422, f"kubeconfig in Secret {ref.namespace}/{ref.name} is unusable: {exc}") from None
        except Exception as exc:  # anything else: name the type only, the message might quote content
            raise KubeError(422, f"kubeconfig in Secret {ref.namespace}/{ref.name} is unusable: "
                                 f"{type(exc).__name__}") from None
        if cached is not None:
            self._retire(cached[1])
        self._clients[name] = (key, api)
        return api

    def _retire(self, api: KubeApi) -> None:
        """Closes a client that is no longer used, once calls still in flight had time to end."""
        if api is self.hub:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: its session (if any) died with its loop

        async def close_later() -> None:
            try:
                await asyncio.sleep(RETIRE_AFTER_S)
            finally:
                await api.aclose()

        task = loop.create_task(close_later())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def aclose(self) -> None:
        """Closes every member client (on shutdown)."""
        for task in list(self._retiring):
            task.cancel()  # closes its client at once
        await asyncio.gather(*self._retiring, return_exceptions=True)
        apis = [api for _, api in self._clients.values() if api is not self.hub]
        self._clients.clear()
        self._fresh.clear()
        await asyncio.gather(*(api.aclose() for api in apis), return_exceptions=True)

    async def probe(self, member: MemberCluster, force: bool = False) -> Health:
        """Reachability of the member's API server, re-checked at most every ``probe_seconds``."""
        name = str(member.metadata.name)  # always set on objects from the API
        now = time.monotonic()
        known = self._health.get(name)
        if known is not None and not force and now - known.checked_at < self.probe_seconds:
            return known
        last_ok = known.last_seen_ok if known else None
        try:
            api = await self.api(member)
            await api.request("GET", "/readyz")
            health = Health(True, "API server reachable", now, now)
        except KubeError as exc:
            health = Health(False, str(exc), now, last_ok)
        self._health[name] = health
        return health

    def health(self, name: str) -> Health | None:
        """The member's last probe result (None before the first probe)."""
        return self._health.get(name)

    def mark_unreachable(self, name: str, message: str) -> None:
        known = self._health.get(name)
        self._health[name] = Health(False, message, time.monotonic(), known.last_seen_ok if known else None)

    def forget_client(self, name: str) -> None:
        cached = self._clients.pop(name, None)
        if cached is not None:
            self._retire(cached[1])

    def forget(self, name: str) -> None:
        self.forget_client(name)
        self._fresh.pop(name, None)
        self._health.pop(name, None)
