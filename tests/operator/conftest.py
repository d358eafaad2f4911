"""Fixtures for the operator tests (helpers live in operator_support.py)."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
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
def operator_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The operator's admin data folder (setting dataDir): trace files MemberClusters may name."""
    return tmp_path_factory.mktemp("trace-data")


@pytest.fixture(scope="session")
def operator(control_plane: Any, members: list[str], operator_data_dir: Path,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorProcess]:
    port = free_port()
    log_path = tmp_path_factory.mktemp("operator") / "operator.log"
    settings = log_path.parent / "settings.yaml"
    settings.write_text(f"dataDir: {operator_data_dir}\n")
    argv = [sys.executable, "-m", "carbonshift", "run", f"--kubeconfig={control_plane.kubeconfig('hub')}",
            f"--settings={settings}", "--no-leader-election", f"--metrics-port={port}", "--cycle-seconds=0.5",
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



