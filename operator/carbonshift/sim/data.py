"""Where the shared real data lives.

Why this module exists: CI places the data at ``../shared/data`` relative to the repository, and
people override it; one function answers "where is the data" for the simulator, tests and benches.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "CARBONSHIFT_DATA_DIR"


def repo_root() -> Path:
    """The repository root: this file is ``<root>/operator/carbonshift/sim/data.py``."""
    return Path(__file__).resolve().parents[3]


def data_dir() -> Path:
    """``$CARBONSHIFT_DATA_DIR`` if set, else ``<repo root>/../shared/data``."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override)
    return repo_root().parent / "shared" / "data"


def lets_wait_awhile(country: str) -> Path:
    """Path of the Let's Wait Awhile trace for ``ger`` or ``gb`` (Wiesner et al., Middleware '21)."""
    return data_dir() / "lets-wait-awhile" / f"{country}_ci.csv"
