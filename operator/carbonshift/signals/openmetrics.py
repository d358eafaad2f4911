"""Writing OpenMetrics text for ``promtool tsdb create-blocks-from openmetrics`` backfill.

promtool wants: one block per metric family, each series' samples in increasing time,
timestamps in (fractional) seconds, and a final ``# EOF``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["Family", "write_openmetrics", "format_labels"]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def format_labels(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(str(v))}"' for k, v in sorted(labels.items())) + "}"


@dataclass
class Family:
    """A metric family: name, type (gauge/counter), help, and samples per label set."""

    name: str
    type: str
    help: str
    series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = field(default_factory=dict)

    def add(self, labels: Mapping[str, str], epoch: float, value: float) -> None:
        if math.isfinite(value):
            self.series.setdefault(tuple(sorted(labels.items())), []).append((epoch, value))


def write_openmetrics(out: TextIO, families: Iterable[Family]) -> int:
    """Write the families; returns the number of samples written."""
    count = 0
    for fam in families:
        out.write(f"# HELP {fam.name} {fam.help}\n# TYPE {fam.name} {fam.type}\n")
        sample_name = fam.name + "_total" if fam.type == "counter" and not fam.name.endswith("_total") else fam.name
        if fam.type == "counter" and fam.name.endswith("_total"):
            raise ValueError("name counter families without _total; the suffix is added to samples")
        for labels, samples in fam.series.items():
            label_text = format_labels(dict(labels))
            for epoch, value in sorted(samples):
                out.write(f"{sample_name}{label_text} {value!r} {epoch:.3f}\n")
                count += 1
    out.write("# EOF\n")
    return count


