"""Shared by the image tests: the hub's name, the repository, and the pinned helm."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
HUB = "hub"


class Helm:
    """The pinned helm, with its config, cache and data kept out of the user's home."""

    def __init__(self, binary: Path, home: Path, kubeconfig: Path) -> None:
        self.binary = binary
        self.env = {**os.environ, "HELM_CONFIG_HOME": str(home / "config"), "HELM_CACHE_HOME": str(home / "cache"),
                    "HELM_DATA_HOME": str(home / "data"), "KUBECONFIG": str(kubeconfig)}

    def run(self, *args: str, check: bool = True, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(self.binary), *args], capture_output=True, text=True, timeout=180, cwd=cwd,
                                env=self.env)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}{result.stdout}")
        return result
