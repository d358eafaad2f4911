"""Chaos tests: faults, hostile input and security checks against the operator running on its
OWN local control plane (ports moved by 200, state in .state/chaos), so killing its API servers
and pausing its etcd never disturbs other test sessions.

Selection: every test here is marked ``chaos``; a few are also ``chaos_smoke`` (a < 3 minute
subset). A plain ``pytest`` / ``make test`` run deselects the full suite and keeps the smoke
subset; ``CARBONSHIFT_CHAOS=1`` runs everything (``make test-chaos``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaos_support import (
    ANCHORS, FULL, MEMBERS, STATE_DIR, TRACES, ChaosPlane, Hub, _member_ready, load_private_localcluster,
    member_manifest, register_members, start_operator, wait_until,
)

_HERE = Path(__file__).resolve().parent
_LEDGER: Counter[str] = Counter()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "chaos: chaos/fault-injection test (full suite: CARBONSHIFT_CHAOS=1)")
    config.addinivalue_line("markers", "chaos_smoke: fast chaos subset that also runs in plain `make test`")
    # The kubernetes client's dry-run error path uses a urllib3 call deprecated upstream.
    config.addinivalue_line("filterwarnings", "ignore:HTTPResponse.getheaders:DeprecationWarning")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        if _HERE not in Path(str(item.fspath)).resolve().parents:
            keep.append(item)
            continue
        item.add_marker(pytest.mark.chaos)
        item.add_marker(pytest.mark.cluster)
        if FULL or item.get_closest_marker("chaos_smoke"):
            keep.append(item)
        else:
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _LEDGER:
        return
    terminalreporter.section("chaos ledger (faults injected / inputs sent / what was lost)")
    for key, value in sorted(_LEDGER.items()):
        terminalreporter.write_line(f"{key:60s} {value}")
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    (STATE_DIR / ("ledger-full.json" if FULL else "ledger-smoke.json")).write_text(
        json.dumps(dict(sorted(_LEDGER.items())), indent=1))


@pytest.fixture(scope="session")
def ledger() -> Counter[str]:
    return _LEDGER


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ChaosPlane]:
    """Overrides tests/conftest.py's fixture: the chaos tests never touch the shared plane."""
    module = load_private_localcluster()
    plane = module.LocalControlPlane(state_dir=STATE_DIR / "cluster", names=("hub", *MEMBERS))
    if not plane.running():
        # A fresh etcd each session: no jobs or member Jobs left over from an earlier run.
        shutil.rmtree(plane.state_dir / "etcd", ignore_errors=True)
    plane.up()
    yield ChaosPlane(plane)
    if os.environ.get("CARBONSHIFT_KEEP_CLUSTER") != "1":
        plane.down()


@pytest.fixture(scope="session")
def members(control_plane: ChaosPlane) -> list[str]:
    plane = control_plane.plane
    register_members(plane, regions=TRACES)
    for name, anchor in ANCHORS.items():
        zone, trace = TRACES[name]
        control_plane.kubectl("hub", "apply", "-f", "-", input=json.dumps(member_manifest(name, zone, trace, anchor)))
    return list(MEMBERS)


@pytest.fixture
def hub(control_plane: ChaosPlane) -> Hub:
    return Hub(control_plane)


@pytest.fixture(scope="module")
def operator(control_plane: ChaosPlane, members: list[str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One operator (accelerated clock, no leader election) per test module."""
    process = start_operator(control_plane, tmp_path_factory.mktemp("operator"))
    wait_until(lambda: all(_member_ready(control_plane, m) for m in members), timeout=60,
               what="MemberClusters Ready", on_fail=process.log_tail)
    yield process
    process.kill(signal.SIGTERM)
    if os.environ.get("CARBONSHIFT_SHOW_OPERATOR_LOG"):
        print(process.log_tail(200))
