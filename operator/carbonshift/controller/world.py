"""The hub's objects as the scheduler last saw them, kept small.

The watches deliver whole objects; the cycle reads a few fields of each. At thousands of jobs
the difference is most of the operator's memory, so bodies are trimmed on the way in:
managedFields, labels and annotations (other than carbonshift's own) are dropped, and a finished
job keeps only what orphan checks and metrics read. A job found invalid keeps only its metadata,
status and its spec as compact JSON text (a hostile tenant's template is not held as thousands of
Python objects); it is checked again when its spec or the MemberClusters and CarbonPolicies change.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from carbonshift.api import TERMINAL_PHASES, CarbonPolicy, CarbonPolicySpec

TERMINAL = TERMINAL_PHASES  # a job in one of these is finished: kept small, not walked by cycles
# Finalizers of earlier versions (Kopf's on.delete): removed after cleanup when such a job is deleted.
FINALIZER = "carbonshift.io/member-jobs"
LEGACY_FINALIZER = "kopf.zalando.org/KopfFinalizerMarker"
# Annotations that repeat the whole object: never read by the operator.
_BULKY_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",
                      "carbonshift.io/last-handled-configuration", "kopf.zalando.org/last-handled-configuration")
_META_KEYS = ("name", "namespace", "uid", "generation", "resourceVersion", "creationTimestamp",
              "deletionTimestamp", "finalizers")
_OWN_ANNOTATIONS = "carbonshift.io/"  # the only annotations kept (the operator reads no others)
# Marks a trimmed invalid job: {"spec": compact JSON of the spec, "config": configuration it was checked against}.
TRIMMED = "carbonshift.io/trimmed"


def slim_job(body: Any) -> dict[str, Any]:
    """A CarbonAwareJob with only the fields the scheduler uses (finished ones even less)."""
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    slim_meta = {k: meta[k] for k in _META_KEYS if meta.get(k) is not None}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items()
                   if str(k).startswith(_OWN_ANNOTATIONS) and k not in _BULKY_ANNOTATIONS}
    if annotations:
        slim_meta["annotations"] = annotations
    if status.get("phase") in TERMINAL and not meta.get("deletionTimestamp"):
        return {"metadata": {k: slim_meta.get(k) for k in ("name", "namespace", "uid", "generation",
                                                           "resourceVersion", "finalizers")},
                "status": {"phase": status.get("phase"), "memberJob": status.get("memberJob")}}
    return {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "metadata": slim_meta,
            "spec": body.get("spec") or {}, "status": dict(status)}


def resource_version(body: dict[str, Any] | None) -> int | None:
    try:
        return int(str(((body or {}).get("metadata") or {}).get("resourceVersion")))
    except ValueError:  # None, or not an integer
        return None


def is_older(new: dict[str, Any], known: dict[str, Any] | None) -> bool:
    """True when ``new`` is an older version of ``known`` (same object, lower resourceVersion).

    The scheduler stores the API server's answer to its own status writes at once; a watch event
    still in flight from before that write must not roll the view back (it would re-dispatch).
    resourceVersions are opaque by contract, but etcd revisions in practice: when one is not an
    integer the newer arrival simply wins.
    """
    if known is None or (new.get("metadata") or {}).get("uid") != (known.get("metadata") or {}).get("uid"):
        return False
    a, b = resource_version(new), resource_version(known)
    return a is not None and b is not None and a < b


@dataclass
class World:
    """The hub's objects as last seen by the watches (fed by the Kopf event handlers)."""

    jobs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    # Keys of the jobs a cycle works on (not finished, or being deleted): thousands of finished
    # jobs stay in ``jobs`` for orphan checks and metrics but are not walked every cycle.
    active: set[tuple[str, str]] = field(default_factory=set)
    uids: dict[str, tuple[str, str]] = field(default_factory=dict)  # uid -> key, for orphan checks
    policies: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    members: dict[str, dict[str, Any]] = field(default_factory=dict)
    first_seen: dict[str, float] = field(default_factory=dict)  # job uid -> monotonic time

    def namespace_policies(self, namespace: str) -> dict[str, CarbonPolicySpec]:
        result = {}
        for (ns, name), body in self.policies.items():
            if ns == namespace:
                try:
                    result[name] = CarbonPolicy.model_validate(body).spec
                except ValidationError:
                    continue
        return result

    def config_fingerprint(self) -> tuple[Any, ...]:
        """Changes whenever a MemberCluster or CarbonPolicy spec changes (or one comes or goes)."""
        def generations(table: dict[Any, dict[str, Any]]) -> tuple[Any, ...]:
            return tuple(sorted((str(k), str((b.get("metadata") or {}).get("uid")),
                                 str((b.get("metadata") or {}).get("generation"))) for k, b in table.items()))
        return generations(self.members), generations(self.policies)

    def trim_invalid(self, key: tuple[str, str], config: tuple[Any, ...]) -> None:
        """Keeps an invalid job as metadata, status and compact spec text (checked against ``config``)."""
        body = self.jobs.get(key)
        if body is None or TRIMMED in body:
            return
        self.jobs[key] = _trimmed(body, json.dumps(body.get("spec") or {}, separators=(",", ":")), config)

    def trimmed_config(self, key: tuple[str, str]) -> tuple[Any, ...] | None:
        """The configuration a trimmed job was found invalid against; None when it is not trimmed."""
        mark = (self.jobs.get(key) or {}).get(TRIMMED)
        return mark["config"] if mark else None

    def restore(self, key: tuple[str, str]) -> dict[str, Any]:
        """A trimmed job with its spec parsed again (to be checked again); stored whole until then."""
        body = self.jobs[key]
        mark = body.get(TRIMMED)
        if mark:
            body = {k: v for k, v in body.items() if k != TRIMMED}
            body["spec"] = json.loads(mark["spec"])
            self.jobs[key] = body
        return body

    def put_job(self, body: dict[str, Any]) -> None:
        """Stores a job as the API server last showed it (never rolled back to an older version)."""
        meta = body.get("metadata") or {}
        key = (str(meta.get("namespace")), str(meta.get("name")))
        known = self.jobs.get(key)
        if is_older(body, known):
            return
        if known is not None:
            self.uids.pop(str((known.get("metadata") or {}).get("uid")), None)
        slim = slim_job(body)
        mark = (known or {}).get(TRIMMED)
        if mark and _same_spec(known, body) and "spec" in slim:
            slim = _trimmed(slim, mark["spec"], mark["config"])  # a status change keeps an invalid job trimmed
        self.jobs[key] = slim
        self.uids[str(meta.get("uid"))] = key
        if (slim.get("status") or {}).get("phase") in TERMINAL and not meta.get("deletionTimestamp"):
            self.active.discard(key)
        else:
            self.active.add(key)

    def drop_job(self, namespace: str, name: str) -> None:
        known = self.jobs.pop((namespace, name), None)
        self.active.discard((namespace, name))
        if known is not None:
            self.uids.pop(str((known.get("metadata") or {}).get("uid")), None)

    def active_jobs(self) -> list[tuple[tuple[str, str], dict[str, Any]]]:
        return [(key, self.jobs[key]) for key in list(self.active) if key in self.jobs]

    def forget_missing(self, known_before: set[str], listed: set[str]) -> list[tuple[str, str]]:
        """Jobs the hub no longer holds after a fresh list are deleted, whether or not a watch said so.

        A watch that broke while a job was deleted (e.g. the hub API server restarted) re-lists
        without a DELETED event; such a job would stay in the view and its copy keep running.
        ``known_before`` are the uids held when the list began (later arrivals are not judged).
        """
        gone = []
        for uid in known_before - listed:
            key = self.uids.get(uid)
            if key is not None:
                self.drop_job(*key)
                self.first_seen.pop(uid, None)
                gone.append(key)
        return gone

    def remember(self, body: dict[str, Any]) -> None:
        """Stores an object the API server returned to one of the scheduler's own writes."""
        self.put_job(body)


def _same_spec(known: dict[str, Any] | None, body: dict[str, Any]) -> bool:
    """Same object and same generation: its spec cannot have changed."""
    a, b = (known or {}).get("metadata") or {}, body.get("metadata") or {}
    return a.get("uid") == b.get("uid") and a.get("generation") == b.get("generation")


def _trimmed(body: dict[str, Any], spec_json: str, config: tuple[Any, ...]) -> dict[str, Any]:
    return {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"), "metadata": body.get("metadata") or {},
            "spec": {}, "status": body.get("status") or {}, TRIMMED: {"spec": spec_json, "config": config}}
