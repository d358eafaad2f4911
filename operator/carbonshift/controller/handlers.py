"""Kopf handlers: plumbing only. Watch events feed the scheduler's world and wake it.

There is deliberately no ``on.create``/``on.delete`` handler: those make Kopf PATCH every object
(its finalizer and bookkeeping annotations), two writes per job. CarbonAwareJobs carry no
finalizer at all (docs/operator.md, "Deletion"): the copy of a deleted job is found by the orphan
collection (``cleanup``). The only finalizer the operator sets is ``carbonshift.io/record-completion``
on the Jobs it creates in member clusters, removed once the hub status records how they ended.
All decisions live in ``cycle``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import aiohttp
import kopf

from carbonshift.api.common import GROUP, VERSION
from carbonshift.controller.cycle import Scheduler
from carbonshift.controller.world import is_older

log = logging.getLogger(__name__)


class WatchOnlyDiffBase(kopf.DiffBaseStorage):
    """Kopf builds a "diff base" of every object on every event (a deep copy of the whole body)
    for change-detecting handlers; only watching handlers are registered here, so no diff is
    ever read, and under a burst that copying was a tenth of the operator's CPU."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


def _scheduler(memo: kopf.Memo) -> Scheduler:
    return memo["scheduler"]  # type: ignore[no-any-return]


# Retried without end: a cloud login outage mid-run must not leave Kopf without credentials for
# good (it would then wait forever); a plugin that fails at start-up ends the process (command.py).
@kopf.on.login(errors=kopf.ErrorsMode.TEMPORARY, retries=None, backoff=10.0)
async def login(memo: kopf.Memo, **_: Any) -> kopf.AiohttpSession:
    """Kopf's watches use the operator's own hub connection (command._hub_connection), never a
    configuration of their own, so both always reach the same cluster with the same identity.

    Kopf calls this again when its token is answered 401 or reaches ``expiration``; the token it
    had is then dropped, so an exec plugin runs again (or a rotated token file is read again).
    """
    hub = _scheduler(memo).hub
    token, expiration = await hub.login_token(refused=memo.get("kopf_token"), again="kopf_token" in memo)
    memo["kopf_token"] = token
    session = aiohttp.ClientSession(
        # The client's own TLS context: its CA, tls-server-name and client certificate.
        connector=aiohttp.TCPConnector(limit=0, ssl=hub.ssl_context if hub.ssl_context is not None else True),
        headers={"Authorization": f"Bearer {token}"} if token else {},
    )
    return kopf.AiohttpSession(server=hub.connection.server, aiohttp_session=session,
                               default_namespace=hub.connection.namespace, expiration=expiration)


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    # Progress in annotations: the CRDs' status schemas are strict and would prune status.kopf.
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = WatchOnlyDiffBase()
    settings.posting.level = logging.WARNING
    # No CRD/namespace scanning: the chart grants no such rights, and the resources are known.
    settings.scanning.disabled = True
    settings.watching.server_timeout = 300
    # One idle worker task per object lingers this long after its last event: short, because a
    # burst of thousands of jobs would otherwise keep thousands of tasks (and bodies) alive.
    settings.batching.idle_timeout = 1.0
    settings.networking.request_timeout = 30
    scheduler = _scheduler(memo)
    memo["stop"] = asyncio.Event()
    if not scheduler.settings.kueue.only:
        memo["task"] = asyncio.create_task(scheduler.run(memo["stop"]))
    if scheduler.settings.kueue.enabled:  # imported only then: the plain operator needs no Kueue
        from carbonshift.kueue.rooms import KueueRooms

        rooms = KueueRooms(scheduler.hub, scheduler.signals, scheduler.clock, scheduler.settings,
                           scheduler.metrics, scheduler.world)
        memo["kueue_task"] = asyncio.create_task(rooms.run(memo["stop"]))


@kopf.on.cleanup()
async def shutdown(memo: kopf.Memo, **_: Any) -> None:
    if "stop" in memo:
        memo["stop"].set()
        if "task" in memo:
            await memo["task"]
        if "kueue_task" in memo:
            await memo["kueue_task"]
    await _scheduler(memo).signals.aclose()


def _store(table: dict[Any, dict[str, Any]], key: Any, event: dict[str, Any], body: dict[str, Any]) -> None:
    if event.get("type") == "DELETED":
        table.pop(key, None)
    elif not is_older(body, table.get(key)):
        table[key] = body


# The event handlers are ``async`` only so that Kopf calls them in its loop: a sync handler
# goes through a thread pool, one hop per watch event (a tenth of the CPU under a burst).
@kopf.on.event(GROUP, VERSION, "carbonawarejobs")
async def job_event(event: dict[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    scheduler = _scheduler(memo)
    meta = body.get("metadata") or {}
    uid = str(meta.get("uid"))
    if event.get("type") == "DELETED":
        scheduler.world.drop_job(str(meta.get("namespace")), str(meta.get("name")))
        scheduler.world.first_seen.pop(uid, None)
    else:
        scheduler.world.put_job(dict(body))
        if not (body.get("status") or {}).get("decision"):  # only undecided jobs wait to be timed
            scheduler.world.first_seen.setdefault(uid, time.monotonic())
    scheduler.wake()


@kopf.on.event(GROUP, VERSION, "carbonpolicies")
async def policy_event(event: dict[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    scheduler = _scheduler(memo)
    meta = body.get("metadata") or {}
    _store(scheduler.world.policies, (meta.get("namespace"), meta.get("name")), event, dict(body))
    scheduler.wake()


@kopf.on.event(GROUP, VERSION, "memberclusters")
async def member_event(event: dict[str, Any], body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    scheduler = _scheduler(memo)
    name = (body.get("metadata") or {}).get("name")
    _store(scheduler.world.members, name, event, dict(body))
    if event.get("type") == "DELETED":
        scheduler.registry.forget(str(name))
    scheduler.wake()
