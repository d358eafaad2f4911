"""Keeps each region's forecast record across restarts, in ConfigMaps in the operator's namespace.

Why this module exists: the learned forecast policy needs a week of a provider's recorded
forecasts before it corrects them; held in memory only, every ``helm upgrade``, node drain or
leader change would start that week again. The leader writes one ConfigMap per MemberCluster
(``carbonshift-forecasts-<member>``, label ``carbonshift.io/forecast-record``), at most once per
issue hour, after the record gained that hour's forecast; the next leader lists them once before
its first plan. A record is used only for the signal it was recorded from (the MemberCluster's
uid, ``carbonSignal`` and ``zone``); a trace replayed from an anchor keeps none (``kept``). One
that is missing is a fresh start; one that cannot be used (garbled, oversized, wrong shapes,
hours after now) is a fresh start with a log line and a
Warning Event on the MemberCluster saying why, never a crash. Tenants have no rights in this
namespace; the record is validated anyway (``signals/record.py``).

The encoding is pure (``signals/record.py``); this module only reads and writes.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from carbonshift.api import MemberCluster, SignalProvider
from carbonshift.api.common import API_VERSION
from carbonshift.controller.events import post_event
from carbonshift.controller.kube import KubeApi, KubeError
from carbonshift.controller.paths import configmap_path
from carbonshift.signals.conditioning import ForecastConditioner
from carbonshift.signals.record import FORMAT, MAX_ENCODED_BYTES, RecordError, decode_record, encode_record

__all__ = ["RecordStore", "LABEL", "kept", "record_name", "signal_fingerprint", "record_configmap"]

log = logging.getLogger(__name__)

LABEL = "carbonshift.io/forecast-record"
PREFIX = "carbonshift-forecasts-"
DATA_KEY = "record"  # binaryData: the encoded record (stored as raw bytes, shown base64 by kubectl)
META_KEY = "meta.json"  # data: what the record is for, readable with kubectl
# The first LIST is retried this long when the API server does not answer (it is needed for
# everything else too); after that the operator runs without keeping records this time, so it
# never overwrites a stored record it could not read.
LOAD_ATTEMPTS = 6
LOAD_RETRY_S = 2.0


def record_name(member: str) -> str:
    """The ConfigMap's name: the prefix and the member's name, hashed when that would be too long."""
    name = PREFIX + member
    if len(name) <= 253:
        return name
    digest = hashlib.sha256(member.encode()).hexdigest()[:12]
    return f"{name[:240].rstrip('.-')}-{digest}"


def signal_fingerprint(member: MemberCluster) -> str:
    """What the record is a record of: this MemberCluster's signal (a changed one starts afresh)."""
    signal = member.spec.model_dump_json(include={"carbon_signal", "zone"})
    return hashlib.sha256(f"{member.metadata.uid}:{signal}".encode()).hexdigest()[:32]


def kept(member: MemberCluster) -> bool:
    """False for a trace replayed from an anchor: the replay starts again from the anchor whenever
    the operator starts, so a record of the last run is of other hours of the trace."""
    signal = member.spec.carbon_signal
    return not (signal.provider == SignalProvider.TRACE and signal.trace is not None
                and signal.trace.anchor is not None)


class RecordMeta(BaseModel):
    """The ConfigMap's ``meta.json``: the record's format and whose it is."""

    model_config = ConfigDict(populate_by_name=True, extra="ignore")

    format: int
    member: str = Field(max_length=253)
    fingerprint: str = Field(max_length=64)
    issues: int = Field(ge=0)
    last_issue: str | None = Field(default=None, alias="lastIssue")


def record_configmap(namespace: str, member: str, fingerprint: str, encoded: bytes, issues: int,
                     last_issue: str | None) -> dict[str, Any]:
    meta = RecordMeta(format=FORMAT, member=member, fingerprint=fingerprint, issues=issues, lastIssue=last_issue)
    return {
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": record_name(member), "namespace": namespace,
                     "labels": {LABEL: "true", "app.kubernetes.io/managed-by": "carbonshift"}},
        "data": {META_KEY: meta.model_dump_json(by_alias=True)},
        "binaryData": {DATA_KEY: base64.b64encode(encoded).decode()},
    }


@dataclass
class _Stored:
    meta: RecordMeta | None
    payload: bytes | None
    problem: str | None  # why it cannot be used, if it cannot


def _parse(item: dict[str, Any]) -> _Stored:
    data = item.get("data") or {}
    binary = (item.get("binaryData") or {}).get(DATA_KEY)
    try:
        meta = RecordMeta.model_validate_json(data.get(META_KEY) or "")
    except ValidationError as exc:
        return _Stored(None, None, f"its {META_KEY} is not valid ({exc.error_count()} errors)")
    if not isinstance(binary, str):
        return _Stored(meta, None, f"it has no binaryData.{DATA_KEY}")
    if len(binary) > MAX_ENCODED_BYTES * 4 // 3 + 4:
        return _Stored(meta, None, f"its record takes {len(binary)} base64 characters, more than a record may")
    try:
        payload = base64.b64decode(binary, validate=True)
    except (binascii.Error, ValueError):
        return _Stored(meta, None, "its record is not base64")
    return _Stored(meta, payload, None)


@dataclass
class RecordStore:
    """The leader's forecast records in ``namespace`` (construct it only where the leader runs)."""

    hub: KubeApi
    namespace: str
    now: Callable[[], datetime]
    enabled: bool = True
    _stored: dict[str, _Stored] = field(default_factory=dict)  # by member name, from the start-up LIST
    _saved: dict[str, int] = field(default_factory=dict)  # by member: the latest issue hour written
    _writing: dict[str, asyncio.Task[None]] = field(default_factory=dict)
    _background: set[asyncio.Future[Any]] = field(default_factory=set)
    _warned: bool = False

    async def load(self, sleep: Callable[[float], Any] = asyncio.sleep) -> None:
        """Reads every stored record once (one LIST), before the first plan."""
        if not self.enabled:
            return
        for attempt in range(1, LOAD_ATTEMPTS + 1):
            try:
                listed = await self.hub.get(configmap_path(self.namespace), {"labelSelector": LABEL})
                break
            except KubeError as exc:
                if exc.unreachable or exc.status >= 500:
                    if attempt < LOAD_ATTEMPTS:
                        await sleep(LOAD_RETRY_S)
                        continue
                what = ("cannot list ConfigMaps there (the Role lacks it)" if exc.status == 403
                        else f"cannot read them ({exc})")
                log.warning("forecast records in namespace %s: %s; the learned forecast policy starts without "
                            "them and keeps none this time", self.namespace, what)
                self.enabled = False
                return
        for item in (listed or {}).get("items") or []:
            stored = _parse(item)
            name = stored.meta.member if stored.meta is not None else None
            if name is None or record_name(name) != (item.get("metadata") or {}).get("name"):
                log.warning("forecast records: ConfigMap %s/%s is not one this operator wrote (%s); ignored",
                            self.namespace, (item.get("metadata") or {}).get("name"),
                            stored.problem or "its name does not match its member")
                continue
            self._stored[name] = stored
        log.info("forecast records: %d found in namespace %s", len(self._stored), self.namespace)

    def restore(self, member: MemberCluster, conditioner: ForecastConditioner) -> None:
        """Gives ``conditioner`` the record stored for ``member``'s signal, if there is a usable one."""
        name = member.metadata.name or ""
        stored = self._stored.pop(name, None)  # once: a later conditioner (a changed signal) starts afresh
        if stored is None or not kept(member):
            return
        if stored.meta is not None and stored.problem is None and stored.meta.fingerprint != signal_fingerprint(member):
            log.info("%s: the stored forecast record is of another signal (carbonSignal or zone changed, or the "
                     "MemberCluster was re-created); starting a new one", name)
            return
        try:
            if stored.problem is not None or stored.payload is None:
                raise RecordError(stored.problem or "no record")
            if stored.meta is not None and stored.meta.format != FORMAT:
                raise RecordError(f"format {stored.meta.format}, this operator reads format {FORMAT}")
            conditioner.import_record(decode_record(stored.payload), self.now())
        except RecordError as exc:
            self._discarded(member, str(exc))
            return
        self._saved[name] = conditioner.latest_issue_hour or 0
        log.info("%s: forecast record restored (%d issues, %d bytes)", name, conditioner.recorded_issues,
                 len(stored.payload or b""))

    def _discarded(self, member: MemberCluster, why: str) -> None:
        name = member.metadata.name or ""
        message = (f"The stored forecast record (ConfigMap {self.namespace}/{record_name(name)}) cannot be used: "
                   f"{why}. The learned forecast policy starts a new record for this region.")
        log.warning("%s: %s", name, message)
        obj = {"apiVersion": API_VERSION, "kind": "MemberCluster",
               "metadata": {"name": name, "uid": member.metadata.uid}}
        self._spawn(post_event(self.hub, obj, "ForecastRecordDiscarded", message, warning=True))

    def save(self, member: MemberCluster, conditioner: ForecastConditioner) -> None:
        """Writes ``member``'s record in the background when it gained an issue hour since the last write."""
        if not self.enabled or not kept(member):
            return
        name = member.metadata.name or ""
        latest = conditioner.latest_issue_hour
        if latest is None or self._saved.get(name, -1) >= latest:
            return
        running = self._writing.get(name)
        if running is not None and not running.done():
            return  # the next cycle after it finishes writes the newer record
        self._saved[name] = latest
        record = conditioner.export_record()  # a copy, taken on the loop: never half-updated
        fingerprint = signal_fingerprint(member)
        last_issue = datetime.fromtimestamp(latest * 3600, tz=self.now().tzinfo).isoformat()

        async def write() -> None:
            encoded = await asyncio.to_thread(encode_record, record)
            body = record_configmap(self.namespace, name, fingerprint, encoded, int(record.issue_hours.shape[0]),
                                    last_issue)
            try:
                await self._put(body)
            except KubeError as exc:
                self._saved.pop(name, None)  # written again next hour
                self._warn_once(f"cannot write ConfigMap {self.namespace}/{body['metadata']['name']}: {exc}")

        task = asyncio.ensure_future(write())
        self._writing[name] = task

    async def _put(self, body: dict[str, Any]) -> None:
        path = configmap_path(self.namespace, body["metadata"]["name"])
        try:
            await self.hub.request("PUT", path, body)  # only the leader writes: no resourceVersion needed
        except KubeError as exc:
            if not exc.not_found:
                raise
            await self.hub.request("POST", configmap_path(self.namespace), body)

    def _warn_once(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            log.warning("forecast records: %s (retried every hour; further failures are logged at debug)", message)
        else:
            log.debug("forecast records: %s", message)

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def aclose(self, timeout: float = 5.0) -> None:
        """Lets the writes under way finish (a stop at any other moment loses at most the last hour)."""
        pending = [t for t in (*self._writing.values(), *self._background) if not t.done()]
        if pending:
            await asyncio.wait(pending, timeout=timeout)
        for task in pending:
            task.cancel()

