"""Which Kepler counters hold a pod's energy, per Kepler line (``MemberCluster.spec.energy.keplerMetrics``).

* ``current`` (Kepler 0.10 and later): ``kepler_pod_cpu_joules_total{pod_name, pod_namespace,
  zone, state, pod_id, node_name}``, one counter per RAPL zone. The ``package`` zone already
  contains ``core`` and ``uncore`` (RAPL's package domain is the whole socket), so a pod's energy
  is ``package`` + ``dram``; summing every zone would count the cores twice or three times.
* ``legacy`` (Kepler 0.7): ``kepler_container_joules_total{container_namespace, pod_name,
  container_name, container_id, mode}``, already summed over components; ``mode`` splits it into
  ``dynamic`` and ``idle`` shares, which together are the container's energy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal

KeplerLine = Literal["current", "legacy"]


@dataclass(frozen=True)
class KeplerMetrics:
    metric: str
    namespace_label: str
    pod_label: str
    selectors: tuple[str, ...] = ()


KEPLER_CURRENT: Final = KeplerMetrics("kepler_pod_cpu_joules_total", "pod_namespace", "pod_name",
                                      ('zone=~"package|dram"',))
KEPLER_LEGACY: Final = KeplerMetrics("kepler_container_joules_total", "container_namespace", "pod_name")
KEPLER_LINES: Final[dict[str, KeplerMetrics]] = {"current": KEPLER_CURRENT, "legacy": KEPLER_LEGACY}


def kepler_metrics(line: str | None) -> KeplerMetrics:
    """The counters of a Kepler line; None means the current one."""
    try:
        return KEPLER_LINES[line or "current"]
    except KeyError:
        raise ValueError(f"unknown Kepler line {line!r}; one of {sorted(KEPLER_LINES)}") from None
