"""Shared helpers of the benchmark scripts: knobs, output paths, machine description, tables.

Why this module exists: every bench script writes a JSON result and a markdown fragment into one
results folder, and `bench/report.py` assembles docs/benchmarks.md from them. The knobs are env
variables so `make bench` and the smoke test drive the same scripts:

- ``BENCH_QUICK=1``: small sizes (seconds instead of minutes), used by tests/bench;
- ``BENCH_OUT``: results folder (default ``.state/bench-results``);
- ``BENCH_IMG``: where PNGs go (default ``docs/img``).
"""

from __future__ import annotations

import json
import os
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "operator"))
sys.path.insert(0, str(REPO_ROOT / "hack"))


def quick() -> bool:
    """True when ``BENCH_QUICK`` asks for the small version."""
    return os.environ.get("BENCH_QUICK", "0") not in ("", "0", "false", "no")


def out_dir() -> Path:
    path = Path(os.environ.get("BENCH_OUT", REPO_ROOT / ".state" / "bench-results"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def img_dir() -> Path:
    path = Path(os.environ.get("BENCH_IMG", REPO_ROOT / "docs" / "img"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def write_result(name: str, data: dict[str, Any]) -> Path:
    """Writes ``<out>/<name>.json`` and returns its path."""
    path = out_dir() / f"{name}.json"
    path.write_text(json.dumps(data, indent=1, default=str))
    return path


def read_result(name: str) -> dict[str, Any] | None:
    path = out_dir() / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def machine() -> dict[str, Any]:
    """nproc, memory and CPU model (from /proc), Python and NumPy versions, load average."""
    import numpy as np

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return {"nproc": os.cpu_count(), "memory_gib": round(mem_gib, 1), "cpu_model": model,
            "machine": platform.machine(), "python": platform.python_version(), "numpy": np.__version__,
            "loadavg": [round(x, 2) for x in load]}


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt(value: float | None, digits: int = 2) -> str:
    if value is None:
        return "—"
    return f"{value:,.{digits}f}"


if __name__ == "__main__":
    # `python bench/common.py machine`: record the machine once, before the benchmarks load it.
    write_result("machine", machine())
