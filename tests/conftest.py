"""Shared fixtures: the real local control plane (hack/localcluster.py), once per test run.

If a developer already ran `make cluster-up`, the running control plane is reused and left
running; otherwise the session starts it and stops it at the end (unless
CARBONSHIFT_KEEP_CLUSTER=1, or another test session still uses it).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

# Imported now, not first by its pytest plugin in the session-end hooks: there, deep in the stack,
# CPython 3.11.7 failed to compile it ("AST constructor recursion depth mismatch", exit code 1
# after `pytest tests/controller` had passed).
import hypothesis  # noqa: F401
import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "hack"))

from cluster_access import ControlPlane
from localcluster import DEFAULT_CLUSTERS, LocalControlPlane

from carbonshift.signals.tracedata import RESEARCH_DATA_ENV, research_data_dir


#: Fixtures that run binaries hack/tools.sh builds (helm): their tests get the ``tools`` marker, which
#: ``make test-unit`` leaves out and ``make test`` runs (it runs ``make tools`` first).
TOOL_FIXTURES = frozenset({"helm", "render", "packaged_chart"})
#: A test using the control plane is a ``cluster`` test, whether or not its module says so.
CLUSTER_FIXTURES = frozenset({"control_plane"})


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``@pytest.mark.research_data("folder")``: skip, saying why, when that research data is not here.
    A test using a fixture of TOOL_FIXTURES is marked ``tools``, one of CLUSTER_FIXTURES ``cluster``."""
    root = research_data_dir()
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & TOOL_FIXTURES:
            item.add_marker(pytest.mark.tools)
        if fixtures & CLUSTER_FIXTURES:
            item.add_marker(pytest.mark.cluster)
        for mark in item.iter_markers("research_data"):
            folder = mark.args[0] if mark.args else ""
            if not (root / folder).is_dir():
                item.add_marker(pytest.mark.skip(
                    reason=f"research data {folder or ''} not found in {root} (not shipped; set {RESEARCH_DATA_ENV})"))
                break


@pytest.fixture(scope="session")
def control_plane() -> Iterator[ControlPlane]:
    plane = LocalControlPlane(names=DEFAULT_CLUSTERS)
    already_running = bool(plane.running()) and all(plane._ready(s) for s in plane.clusters)
    plane.up()
    plane.register_user(os.getpid())
    yield ControlPlane(plane)
    others = plane.unregister_user(os.getpid())
    if not already_running and not others and os.environ.get("CARBONSHIFT_KEEP_CLUSTER") != "1":
        plane.down()


@pytest.fixture
def make_namespace(control_plane: ControlPlane) -> Iterator[Callable[[str], str]]:
    """Creates a uniquely named namespace in a cluster; all are deleted after the test."""
    created: list[tuple[str, str]] = []

    def make(cluster: str, prefix: str = "t") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:8]}"
        control_plane.kubectl(cluster, "create", "namespace", name)
        created.append((cluster, name))
        return name

    yield make
    for cluster, name in created:
        control_plane.kubectl(cluster, "delete", "namespace", name, "--wait=false", check=False)
