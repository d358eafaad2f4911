"""Fixtures for the Helm chart tests: the pinned helm binary (built by hack/tools.sh, found once
per session) with an isolated helm home, and ``render`` for ``helm template``."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from chart_support import REPO_ROOT, Helm

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
