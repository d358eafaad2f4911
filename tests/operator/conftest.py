"""Fixtures for the operator tests (helpers live in operator_support.py)."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from operator_support import (
    ANCHORS, CLOCK_SPEED, REGIONS, Hub, OperatorProcess, _member_ready, _metrics_up, free_port, kubectl,
    member_manifest, register_members, wait_until,
)


@pytest.fixture(scope="session")
def members(control_plane: Any) -> list[str]:
    plane = control_plane.plane
    register_members(plane)
    for name, anchor in ANCHORS.items():
        zone, trace = REGIONS[name]
        kubectl(plane, "hub", "apply", "-f", "-", input=json.dumps(member_manifest(name, zone, trace, anchor)))
    return list(ANCHORS)


@pytest.fixture(scope="session")
def operator(control_plane: Any, members: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    argv = [sys.executable, "-m", "carbonshift", "run", f"--kubeconfig={control_plane.kubeconfig('hub')}",
            "--no-leader-election", f"--metrics-port={port}", "--cycle-seconds=0.5",
            f"--clock-speed={CLOCK_SPEED}"]
    process = OperatorProcess(argv, log_path, port)
    process.start()
    wait_until(lambda: _metrics_up(process), timeout=60, what="operator /metrics", on_fail=process.log_tail)
    # The members turn Ready once the operator probed them.
    wait_until(lambda: all(_member_ready(control_plane, m) for m in members), timeout=60,
               what="MemberClusters Ready", on_fail=process.log_tail)
    yield process
    process.kill(signal.SIGTERM)
    if os.environ.get("CARBONSHIFT_SHOW_OPERATOR_LOG"):
        print(process.log_tail(200))


@pytest.fixture
def hub(control_plane: Any) -> Hub:
    return Hub(control_plane)



