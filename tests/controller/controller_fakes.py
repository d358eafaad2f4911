"""A recording fake of the operator's own Kubernetes client, a fixed clock and fixed signals.

``FakeApi`` answers the calls the controller makes through ``controller.kube.KubeApi`` (request,
get, merge_patch, watch) from objects held in memory, the way an API server would for those
calls: deterministic names give 409 on a second create, a finalizer keeps a deleted Job with a
deletionTimestamp, a resourceVersion grows with every write, label selectors filter lists and
watches. Every call is recorded; faults (a status such as 409 or 404, or 0 = unreachable) can be
injected for the next matching calls, a whole server can be made unreachable, and matching calls
can be held unanswered until the test lets them go (a slow server).

This is not a Kubernetes: admission, garbage collection and Job controllers are absent. The
real-server tests (tests/operator, tests/chaos) are the end-to-end layer; these fakes make the
controller's own decisions testable in milliseconds. The fixed clock is ``controller.clock.FixedClock``.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

from carbonshift.api import MemberCluster
from carbonshift.controller.kube import KubeError
from carbonshift.controller.members import MemberRegistry
from carbonshift.controller.signalhub import RegionReading
from carbonshift.core import Capacity, RegionSignals

JOBS_PREFIX = "/apis/batch/v1/"
_SEQUENCE = itertools.count()  # orders calls across servers (e.g. status written before a member is changed)


@dataclass
class Call:
    method: str
    path: str
    body: Any = None
    query: dict[str, Any] | None = None
    seq: int = field(default_factory=lambda: next(_SEQUENCE))

    @property
    def dry_run(self) -> bool:
        return (self.query or {}).get("dryRun") == "All"


@dataclass
class Fault:
    method: str
    path_part: str
    status: int
    times: int
    lost_answer: bool = False  # the call takes effect, then its answer is lost (a timeout after sending)


def _selector_matches(selector: str | None, labels: dict[str, str]) -> bool:
    for term in (selector or "").split(","):
        if not term:
            continue
        key, _, value = term.partition("=")
        if labels.get(key) != value:
            return False
    return True


def _in_collection(object_path: str, collection: str) -> bool:
    """Whether the object at ``object_path`` is listed by ``collection`` (one namespace's, or all namespaces')."""
    obj, coll = object_path.strip("/").split("/"), collection.strip("/").split("/")
    if obj[:-1] == coll:
        return True
    return "namespaces" not in coll and len(obj) == len(coll) + 3 and obj[-2] == coll[-1] and obj[:len(coll) - 1] == coll[:-1]


def _merge(target: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """RFC 7386 JSON merge patch."""
    out = dict(target)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class FakeApi:
    """One API server in memory; records every call (``calls``)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.objects: dict[str, dict[str, Any]] = {}  # object path -> body
        self.calls: list[Call] = []
        self.faults: list[Fault] = []
        self.holds: list[tuple[str, str, bool, asyncio.Event]] = []  # (method, path part, dry run, released)
        self.reachable = True
        self.events: list[tuple[int, str, str, dict[str, Any]]] = []  # (resourceVersion, type, path, object)
        self._version = 100
        self._changed = asyncio.Condition()
        self._wakers: set[asyncio.Task[None]] = set()  # wake-ups of watches in flight

    def __repr__(self) -> str:
        return f"FakeApi({self.name!r})"

    # ----- test controls -------------------------------------------------------------------
    def fail(self, method: str, path_part: str, status: int, times: int = 1) -> None:
        """The next ``times`` calls of ``method`` whose path contains ``path_part`` answer ``status``."""
        self.faults.append(Fault(method, path_part, status, times))

    def lose_answer(self, method: str, path_part: str, times: int = 1) -> None:
        """The next ``times`` real (not dry-run) calls of ``method`` whose path contains ``path_part``
        take effect, and then the caller sees the server as unreachable (the answer never came)."""
        self.faults.append(Fault(method, path_part, 0, times, lost_answer=True))

    def hold(self, method: str, path_part: str, *, dry_run: bool = False) -> asyncio.Event:
        """Calls of ``method`` whose path contains ``path_part`` are sent (recorded) but answered only
        once the returned event is set."""
        released = asyncio.Event()
        self.holds.append((method, path_part, dry_run, released))
        return released

    def put(self, path: str, body: dict[str, Any], *, unseen: bool = False) -> dict[str, Any]:
        """Stores an object as if someone else had written it (no call recorded); ``unseen``: no
        watch event (it was written while a watch was broken, say)."""
        stored = self._store(path, copy.deepcopy(body), "ADDED")
        if unseen:
            self.events.pop()
        return stored

    def remove(self, path: str) -> None:
        """Someone else deleted the object outright (a finalizer removed by hand, say)."""
        body = self.objects.pop(path)
        self._version += 1
        self._notify("DELETED", path, body)

    def writes(self, method: str | None = None, part: str = "", *, dry_run: bool = False) -> list[Call]:
        """Recorded calls that change something (or ``method`` ones), whose path contains ``part``."""
        return [c for c in self.calls if (c.method == method if method else c.method != "GET")
                and part in c.path and c.dry_run == dry_run]

    def jobs(self) -> list[dict[str, Any]]:
        return [o for p, o in sorted(self.objects.items()) if p.startswith(JOBS_PREFIX)]

    # ----- the KubeApi interface -----------------------------------------------------------
    async def request(self, method: str, path: str, body: Any = None, query: dict[str, Any] | None = None,
                      content_type: str = "application/json", accept: str = "application/json") -> Any:
        body = None if body is None else json.loads(json.dumps(body))  # on the wire: enums become strings
        call = Call(method, path, copy.deepcopy(body), dict(query) if query else None)
        self.calls.append(call)
        for held_method, part, dry_run, released in self.holds:
            if held_method == method and part in path and dry_run == call.dry_run:
                await released.wait()
        self._check(method, path)
        if path == "/readyz":
            return "ok"
        if method == "GET":
            return self._get(path, query or {})
        if method == "POST":
            posted = self._post(path, body, query or {})
            self._check_answer(method, path, query or {})
            return posted
        if method == "PATCH":
            return self._patch(path, body, content_type)
        if method == "DELETE":
            return self._delete(path)
        raise KubeError(405, f"{self.name}: {method} {path}: not supported by the fake")

    async def get(self, path: str, query: dict[str, Any] | None = None) -> Any:
        return await self.request("GET", path, query=query)

    async def merge_patch(self, path: str, patch: dict[str, Any]) -> Any:
        return await self.request("PATCH", path, patch, content_type="application/merge-patch+json")

    async def watch(self, path: str, query: dict[str, Any] | None = None) -> AsyncIterator[dict[str, Any]]:
        self.calls.append(Call("WATCH", path, None, dict(query) if query else None))
        self._check("GET", path)
        since = int((query or {}).get("resourceVersion") or 0)
        selector = (query or {}).get("labelSelector")
        while True:
            for version, kind, object_path, obj in [e for e in self.events if e[0] > since]:
                since = version
                if _in_collection(object_path, path) and _selector_matches(selector, obj["metadata"].get("labels") or {}):
                    yield {"type": kind, "object": copy.deepcopy(obj)}
            async with self._changed:
                await self._changed.wait()
            self._check("GET", path)

    async def aclose(self) -> None:
        return None

    # ----- behaviour -----------------------------------------------------------------------
    def _check(self, method: str, path: str) -> None:
        if not self.reachable:
            raise KubeError(0, f"{self.name}: {method} {path}: unreachable (ClientConnectorError)")
        for fault in self.faults:
            if fault.times > 0 and not fault.lost_answer and fault.method == method and fault.path_part in path:
                fault.times -= 1
                if fault.status == 0:
                    raise KubeError(0, f"{self.name}: {method} {path}: unreachable (injected)")
                raise KubeError(fault.status, f"{self.name}: {method} {path}: injected HTTP {fault.status}")

    def _check_answer(self, method: str, path: str, query: dict[str, Any]) -> None:
        for fault in self.faults:
            if fault.times > 0 and fault.lost_answer and fault.method == method and fault.path_part in path \
                    and query.get("dryRun") != "All":
                fault.times -= 1
                raise KubeError(0, f"{self.name}: {method} {path}: unreachable (the answer was lost)")

    def _store(self, path: str, body: dict[str, Any], kind: str) -> dict[str, Any]:
        self._version += 1
        meta = body.setdefault("metadata", {})
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", "2022-01-01T00:00:00Z")
        meta["resourceVersion"] = str(self._version)
        if meta.get("generation") is None and body.get("kind") != "Job":
            meta["generation"] = 1
        self.objects[path] = body
        self._notify(kind, path, body)
        return copy.deepcopy(body)

    def _notify(self, kind: str, path: str, body: dict[str, Any]) -> None:
        self.events.append((self._version, kind, path, copy.deepcopy(body)))
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return

        async def wake() -> None:
            async with self._changed:
                self._changed.notify_all()

        self._wakers.add(task := loop.create_task(wake()))
        task.add_done_callback(self._wakers.discard)

    def _not_found(self, method: str, path: str) -> KubeError:
        return KubeError(404, f"{self.name}: {method} {path}: not found")

    def _get(self, path: str, query: dict[str, Any]) -> Any:
        if path in self.objects:
            return copy.deepcopy(self.objects[path])
        if path.endswith("/events"):
            return {"items": []}
        if path == "/api/v1/namespaces/kube-system":
            return {"metadata": {"name": "kube-system", "uid": f"{self.name}-kube-system-uid"}}
        if not self._is_collection(path):
            raise self._not_found("GET", path)
        items = [copy.deepcopy(o) for p, o in sorted(self.objects.items()) if _in_collection(p, path)
                 and _selector_matches(query.get("labelSelector"), o["metadata"].get("labels") or {})]
        return {"items": items, "metadata": {"resourceVersion": str(self._version)}}

    @staticmethod
    def _is_collection(path: str) -> bool:
        last = path.rstrip("/").rsplit("/", 1)[-1]
        return last in ("jobs", "carbonawarejobs", "memberclusters", "pods", "namespaces", "events")

    def _post(self, path: str, body: dict[str, Any], query: dict[str, Any]) -> Any:
        name = body["metadata"]["name"]
        target = f"{path}/{name}"
        if query.get("dryRun") == "All":
            if target in self.objects:
                raise KubeError(409, f"{self.name}: POST {path}: {name} already exists")
            return copy.deepcopy(body)
        if target in self.objects:
            raise KubeError(409, f"{self.name}: POST {path}: {name} already exists")
        return self._store(target, copy.deepcopy(body), "ADDED")

    def _patch(self, path: str, patch: dict[str, Any], content_type: str) -> Any:
        object_path = path[: -len("/status")] if path.endswith("/status") else path
        if object_path not in self.objects:
            raise self._not_found("PATCH", path)
        current = copy.deepcopy(self.objects[object_path])
        if path.endswith("/status"):
            patch = {"status": patch.get("status") or {}}
        elif "strategic" in content_type:
            meta = patch.get("metadata") or {}
            finalizers = list(current["metadata"].get("finalizers") or [])
            for gone in meta.get("$deleteFromPrimitiveList/finalizers") or []:
                finalizers = [f for f in finalizers if f != gone]
            for added in meta.get("finalizers") or []:
                if added not in finalizers:
                    finalizers.append(added)
            current["metadata"]["finalizers"] = finalizers
            labels = {**(current["metadata"].get("labels") or {}), **(meta.get("labels") or {})}
            current["metadata"]["labels"] = labels
            patch = {k: v for k, v in patch.items() if k != "metadata"}
        expected = (patch.get("metadata") or {}).get("resourceVersion")
        if expected is not None and expected != current["metadata"].get("resourceVersion"):
            raise KubeError(409, f"{self.name}: PATCH {path}: the object has been modified")
        if "metadata" in patch:
            patch = {**patch, "metadata": {k: v for k, v in patch["metadata"].items() if k != "resourceVersion"}}
        updated = _merge(current, patch)
        if updated["metadata"].get("deletionTimestamp") and not updated["metadata"].get("finalizers"):
            self.objects.pop(object_path)
            self._version += 1
            self._notify("DELETED", object_path, updated)
            return copy.deepcopy(updated)
        return self._store(object_path, updated, "MODIFIED")

    def _delete(self, path: str) -> Any:
        if path not in self.objects:
            raise self._not_found("DELETE", path)
        body = self.objects[path]
        if body["metadata"].get("finalizers"):
            body = copy.deepcopy(body)
            body["metadata"]["deletionTimestamp"] = "2022-01-01T00:00:00Z"
            return self._store(path, body, "MODIFIED")
        self.objects.pop(path)
        self._version += 1
        self._notify("DELETED", path, body)
        return {"kind": "Status", "status": "Success"}


class FakeRegistry(MemberRegistry):
    """The real MemberRegistry (probes, health, marks), with each member's client a FakeApi."""

    def __init__(self, hub: FakeApi, apis: dict[str, FakeApi]) -> None:
        super().__init__(hub=hub, probe_seconds=0.0)  # type: ignore[arg-type]
        self.apis = apis

    async def api(self, member: MemberCluster) -> Any:
        return self.apis[str(member.metadata.name)]


@dataclass
class FakeSignals:
    """Carbon intensity per region on the slot grid, as a SignalHub would read it."""

    slot: timedelta = timedelta(minutes=15)
    n_slots: int = 96
    intensity: dict[str, list[float]] = field(default_factory=dict)  # region -> per slot from each read's start
    observed_age: dict[str, timedelta] = field(default_factory=dict)  # region -> age of its newest value
    errors: dict[str, str] = field(default_factory=dict)  # region -> provider error this cycle
    reads: int = 0

    async def read(self, member: MemberCluster, start: datetime, battery_reserve_fraction: float = 0.2) -> RegionReading:
        self.reads += 1
        spec = member.spec
        values = list(self.intensity.get(spec.region, [300.0]))
        values = (values + [values[-1]] * self.n_slots)[: self.n_slots]
        capacity = Capacity(spec.capacity.max_concurrent_jobs, spec.capacity.power_budget_watts)
        signals = RegionSignals(spec.region, start, self.slot, np.array(values, dtype=float), None, None, capacity,
                                spec.pue)
        observed = start - self.observed_age.get(spec.region, timedelta(0))
        return RegionReading(spec.region, str(member.metadata.name), signals, observed, values[0], "fake", "forecast",
                             error=self.errors.get(spec.region))

    async def history_mean(self, member: MemberCluster, start: datetime, end: datetime) -> float | None:
        return None

    async def measured_energy_wh(self, *args: Any) -> float | None:
        return None

    async def aclose(self) -> None:
        return None


T0 = datetime(2022, 6, 1, 0, 0, tzinfo=timezone.utc)
