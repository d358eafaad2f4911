"""Fixtures for the image tests: the project's container engine (hack/engine.py, started here and
stopped by PID if this session started it), the operator image built by it, the pinned helm and
a kubelet for the hub (tests/image/kubelet.py)."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, EngineError, default_tag  # hack/ is on sys.path (tests/conftest.py)
from image_support import HUB, REPO_ROOT, Helm
from kubelet import Kubelet


@pytest.fixture(scope="session")
def engine() -> Iterator[Engine]:
    engine = Engine()
    try:
        started = engine.up()  # installs docker.io and mmdebstrap with apt-get when missing (root)
    except EngineError as exc:
        pytest.fail(f"the container engine (hack/engine.py) did not start: {exc}")
    yield engine
    if started:
        engine.down()


@pytest.fixture(scope="session")
def image(engine: Engine) -> str:
    """The operator image, built from this checkout exactly as `make image` builds it."""
    tag = default_tag()
    try:
        engine.build(tag)
    except EngineError as exc:
        pytest.fail(f"`make image` failed: {exc}")
    return tag


@pytest.fixture(scope="session")
def tools_bin() -> Path:
    result = subprocess.run(["bash", "hack/tools.sh"], capture_output=True, text=True, cwd=REPO_ROOT)
    if result.returncode != 0:
        pytest.fail(f"bash hack/tools.sh failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return Path(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def helm(tools_bin: Path, control_plane: Any, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(tools_bin / "helm", tmp_path_factory.mktemp("helm-home"), control_plane.kubeconfig(HUB))


@pytest.fixture
def kubelet(control_plane: Any, engine: Engine, tmp_path: Path) -> Kubelet:
    """Runs hub Pods for real; the pod reaches every API server of the local control plane."""
    ports = [control_plane.plane.spec(name).port for name in control_plane.names]
    return Kubelet(control_plane, engine, HUB, tmp_path / "kubelet", ports)
