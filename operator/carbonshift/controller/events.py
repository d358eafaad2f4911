"""Kubernetes Events on CarbonAwareJobs and MemberClusters: what happened and why, for people.

Events are best effort: failing to post one never stops a decision or a dispatch.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone
from typing import Any

from carbonshift.controller.kube import KubeApi, KubeError
from carbonshift.controller.paths import events_path
from carbonshift.timefmt import to_iso

log = logging.getLogger(__name__)
COMPONENT = "carbonshift"


async def post_event(hub: KubeApi, obj: dict[str, Any], reason: str, message: str, *, warning: bool = False) -> None:
    meta = obj.get("metadata") or {}
    namespace = meta.get("namespace") or "default"
    now = to_iso(datetime.now(timezone.utc))
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": f"{meta.get('name', 'object')[:200]}.{uuid.uuid4().hex[:12]}", "namespace": namespace},
        "involvedObject": {
            "apiVersion": obj.get("apiVersion"), "kind": obj.get("kind"), "name": meta.get("name"),
            "namespace": meta.get("namespace"), "uid": meta.get("uid"),
        },
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        await hub.request("POST", events_path(namespace), event)
    except KubeError as exc:
        log.info("could not post event %s on %s/%s: %s", reason, namespace, meta.get("name"), exc)
