"""Fixtures for the Helm chart tests: the pinned helm binary (built by hack/tools.sh, found once
per session) with an isolated helm home, and ``render`` for ``helm template``."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from chart_support import CHART, REPO_ROOT, Helm

Rendered = list[dict]

@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    result = subprocess.run(["bash", "hack/tools.sh"], capture_output=True, text=True, cwd=REPO_ROOT)
    if result.returncode != 0:
        pytest.fail(f"bash hack/tools.sh failed ({result.returncode}); it builds helm:\n{result.stderr[-3000:]}")
    binary = Path(result.stdout.strip().splitlines()[-1]) / "helm"
    if not binary.is_file():
        pytest.fail(f"hack/tools.sh did not provide {binary}")
    return Helm(binary, tmp_path_factory.mktemp("helm-home"))

@pytest.fixture(scope="session")
def render(helm: Helm) -> Callable[..., Rendered]:
    """``render(*helm_args)`` -> the documents of ``helm template`` (cached per argument list)."""
    cache: dict[tuple[str, ...], Rendered] = {}

    def _render(*args: str) -> Rendered:
        key = tuple(args)
        if key not in cache:
            out = helm.template(*args).stdout
            cache[key] = [d for d in yaml.safe_load_all(out) if d]
        return cache[key]

    return _render


@pytest.fixture(scope="session")
def packaged_chart(helm: Helm, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``make chart`` as a user runs it: the path of dist/carbonshift-<version>.tgz (in a temporary DIST)."""
    dist = tmp_path_factory.mktemp("dist")
    result = subprocess.run(["make", "--no-print-directory", "chart", f"DIST={dist}"], capture_output=True, text=True,
                            cwd=REPO_ROOT)
    assert result.returncode == 0, f"make chart failed:\n{result.stdout}{result.stderr}"
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["version"]
    package = dist / f"carbonshift-{version}.tgz"
    assert [p.name for p in dist.iterdir()] == [package.name], f"make chart wrote {list(dist.iterdir())}"
    return package
