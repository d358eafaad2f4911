"""A simulated on-site solar array and battery, for the exporter and the demo. SIMULATED data.

Solar: a clear-sky bell curve (06:00–18:00 UTC, peak at noon) times a peak power, or, given
``solar_trace`` (e.g. Vessim's Solcast sample of normalised PV output, research data that is
not shipped, see ``vessim/SOURCE.md``), that trace's ``city`` column mapped onto its year by
calendar. Battery: a deterministic model, stepped over the
previous 48 hours from 50 % charge, that stores solar surplus above a constant site load
and covers the deficit down to a 10 % reserve. Both are labelled ``simulated="true"``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np

from carbonshift.timefmt import ensure_utc

from .trace import CalendarTimeMap, TraceProvider
from .tracedata import TraceRef, load_trace

__all__ = ["SimulatedSite", "SOLCAST_FILE"]

#: Vessim's Solcast sample inside the research data folder (not shipped).
SOLCAST_FILE = "vessim/datasets/solcast2022_global_actual.csv"
_STEP = 300.0  # seconds


def _bell(epoch: float) -> float:
    hour = (epoch % 86400) / 3600.0
    return max(0.0, math.sin(math.pi * (hour - 6.0) / 12.0)) if 6.0 <= hour <= 18.0 else 0.0


@dataclass
class SimulatedSite:
    """Solar and battery of one site at the clock ``now``; all values are simulated."""

    now: Callable[[], datetime]
    solar_peak_watts: float = 50_000.0
    battery_capacity_wh: float = 100_000.0
    site_load_watts: float = 20_000.0
    battery_max_charge_watts: float = 25_000.0
    city: str = "Berlin"
    solar_trace: TraceRef | None = None
    model: str = field(default="", init=False)

    def __post_init__(self) -> None:
        self._solar: TraceProvider | None = None
        self.model = "clear-sky bell curve, 06:00-18:00 UTC"
        if self.solar_trace is not None:
            trace = load_trace(self.solar_trace, self.city)
            self._solar = TraceProvider(trace, now=self.now, time_map=CalendarTimeMap())
            self.model = f"normalised PV from {trace.name}, column {self.city}"

    def solar_fraction_at(self, epochs: np.ndarray) -> np.ndarray:
        """Normalised PV output (0..1) at the given wall-clock epochs."""
        if self._solar is None:
            return np.array([_bell(e) for e in epochs])
        tr = self._solar.trace
        offset = self._solar.time_map.offset(ensure_utc(self.now()), tr)
        rel = (epochs - offset - tr.times[0]) % tr.period
        idx = np.clip(np.searchsorted(tr.times - tr.times[0], rel, side="right") - 1, 0, tr.times.size - 1)
        fraction: np.ndarray = np.clip(np.nan_to_num(tr.values[idx]), 0.0, 1.0)
        return fraction

    def solar_power_watts(self) -> float:
        now = ensure_utc(self.now()).timestamp()
        return float(self.solar_fraction_at(np.array([now]))[0] * self.solar_peak_watts)

    def battery_state_of_charge(self) -> float:
        """0..1, from a 48-hour deterministic simulation ending now."""
        now = ensure_utc(self.now()).timestamp()
        now -= now % _STEP
        epochs = now - _STEP * np.arange(int(48 * 3600 / _STEP), -1, -1)
        surplus = self.solar_fraction_at(epochs) * self.solar_peak_watts - self.site_load_watts
        energy = 0.5 * self.battery_capacity_wh
        floor = 0.1 * self.battery_capacity_wh
        hours = _STEP / 3600.0
        for watts in surplus:
            delta = min(watts, self.battery_max_charge_watts) * hours
            energy = min(self.battery_capacity_wh, max(floor, energy + delta))
        return energy / self.battery_capacity_wh


def utc_now() -> datetime:
    """The real clock, for command-line entry points only (logic takes an injected clock)."""
    return datetime.now(timezone.utc)


