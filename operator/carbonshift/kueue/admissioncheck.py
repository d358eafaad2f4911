"""carbonshift as a Kueue AdmissionCheck controller (``controllerName: carbonshift.io/green-window``).

Kueue adds the check to a Workload as Pending once it has reserved quota; this room keeps it
Pending until the plan's start and then sets it Ready, each time saying why in the message. Kueue
admits the Workload (and unsuspends the Job) only when every check is Ready, so quotas still hold:
a Workload without reserved quota is never looked at. Writes are one list-map entry by server-side
apply under the check's own field manager; Kueue's other entries are left alone.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

from carbonshift.controller.events import post_event
from carbonshift.controller.kube import KubeApi, KubeError
from carbonshift.kueue.workloads import (
    CHECK_FIELD_MANAGER,
    Workload,
    active_condition_patch,
    check_patch,
    cluster_path,
    workloads_path,
)

log = logging.getLogger(__name__)


def _wall() -> datetime:
    """API timestamps are real time, also when the operator's planning clock is accelerated (demos, tests)."""
    return datetime.now(timezone.utc)
APPLY = "application/apply-patch+yaml"  # JSON is YAML


class GreenWindowCheck:
    def __init__(self, hub: KubeApi, controller_name: str) -> None:
        self.hub = hub
        self.controller_name = controller_name
        self._activated: set[str] = set()

    async def activate(self, checks: list[dict[str, Any]]) -> None:
        """Marks every AdmissionCheck naming this controller Active (else its ClusterQueues stay inactive)."""
        for check in checks:
            name = str((check.get("metadata") or {}).get("name"))
            if (check.get("spec") or {}).get("controllerName") != self.controller_name:
                continue
            conditions = (check.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "Active" and c.get("status") == "True" for c in conditions):
                self._activated.add(name)
                continue
            try:
                await self.hub.request("PATCH", cluster_path("admissionchecks", name, "status"),
                                       active_condition_patch(name, _wall(), "carbonshift holds Workloads for green windows"),
                                       query={"fieldManager": CHECK_FIELD_MANAGER, "force": True}, content_type=APPLY)
                log.info("AdmissionCheck %s is Active", name)
            except KubeError as exc:
                log.warning("could not mark AdmissionCheck %s Active: %s", name, exc)

    async def set_state(self, workload: Workload, check: str, state: str, message: str,
                        *, event: str | None = None, warning: bool = False) -> bool:
        """Writes the check's entry when state or message changed; True when written."""
        current = workload.checks.get(check)
        if current is not None and current.state == state and current.message == message[:32768]:
            return False
        try:
            await self.hub.request("PATCH", workloads_path(workload.namespace, workload.name, "status"),
                                   check_patch(workload, check, state, message, _wall()),
                                   query={"fieldManager": CHECK_FIELD_MANAGER, "force": True}, content_type=APPLY)
        except KubeError as exc:
            if not exc.not_found:
                log.warning("setting check %s of %s to %s: %s", check, workload.key, state, exc)
            return False
        if event:
            await post_event(self.hub, workload.body_ref(), event, message, warning=warning)
        return True
