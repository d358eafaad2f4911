"""Stopping Kueue on a running plane leaves nothing behind that refuses other work.

Kueue's batch/v1 Job webhooks have no namespace selector and fail closed: if their configurations
outlived the Kueue processes, every Job created on the plane afterwards would be refused (found
when the operator tests ran after the Kueue tests on one plane)."""

from __future__ import annotations

from typing import Any

import pytest
from kueue import MUTATING, VALIDATING, KueuePlane  # hack/kueue.py (tests/conftest.py puts hack/ on sys.path)

pytestmark = pytest.mark.cluster


def test_a_stopped_kueue_leaves_plain_jobs_admitted(control_plane: Any) -> None:
    kueue = KueuePlane(control_plane.plane)
    was_running = bool(kueue.running())  # e.g. a developer's `hack/cluster up --kueue`: restored at the end
    if not was_running:
        kueue.up()
    assert MUTATING in kueue.kubectl("eu-de", "get", "mutatingwebhookconfiguration", "-o", "name")
    kueue.down()
    try:
        for cluster in ("hub", *kueue.workers):
            hooks = kueue.kubectl(cluster, "get", "mutatingwebhookconfiguration,validatingwebhookconfiguration",
                                  "-o", "name")
            assert MUTATING not in hooks and VALIDATING not in hooks, (cluster, hooks)
            created = kueue.kubectl(cluster, "create", "job", "plain", "--image=busybox", "--dry-run=server",
                                    "-n", "default", "-o", "name")
            assert created.strip() == "job.batch/plain", (cluster, created)
    finally:
        if was_running:
            kueue.up()
