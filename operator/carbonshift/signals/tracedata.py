"""Loading real carbon-intensity traces (CSV) from the project's shared data folder.

Understands the layouts shipped in ``../shared/data`` (Let's Wait Awhile, Electricity Maps
hourly downloads, DACF forecasts with actuals, Vessim) and any ``time,value`` CSV. The data
folder is found relative to the repository root, or set with ``CARBONSHIFT_DATA_DIR``.
"""

from __future__ import annotations

import csv
import functools
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import numpy.typing as npt

from .errors import BadSignalData, SignalConfigError

__all__ = ["DATA_DIR_ENV", "KNOWN_TRACES", "Trace", "data_dir", "resolve_trace_path", "load_trace"]

DATA_DIR_ENV = "CARBONSHIFT_DATA_DIR"

#: Zone -> trace path relative to the data folder (see each folder's SOURCE.md for licence and citation).
KNOWN_TRACES: dict[str, str] = {
    "DE": "lets-wait-awhile/ger_ci.csv",
    "GB": "lets-wait-awhile/gb_ci.csv",
    "ES": "decarbonization-potential/downloaded_carbon_data/ES_2022_hourly.csv",
    "NO": "decarbonization-potential/downloaded_carbon_data/NO_2022_hourly.csv",
    "BR": "decarbonization-potential/downloaded_carbon_data/BR_2022_hourly.csv",
    "US-CAL-CISO": "decarbonization-potential/downloaded_carbon_data/US-CAL-CISO_2022_hourly.csv",
    "SE": "dacf/data/SE/SE_carbon_from_src_prod_forecasts_direct.csv",
    "US-MIDA-PJM": "dacf/data/PJM/PJM_carbon_from_src_prod_forecasts_direct.csv",
    "US-TEX-ERCO": "dacf/data/ERCO/ERCO_carbon_from_src_prod_forecasts_direct.csv",
    "US-NE-ISNE": "dacf/data/ISNE/ISNE_carbon_from_src_prod_forecasts_direct.csv",
}

_TIME_COLUMNS = ("Time", "Datetime (UTC)", "UTC time", "datetime", "time", "timestamp")
_VALUE_COLUMNS = (
    "Carbon Intensity",
    "Carbon Intensity gCO₂eq/kWh (LCA)",
    "carbon_intensity",
    "Caiso_North",
)
_FORECAST_COLUMNS = ("carbon_from_src_forecasts",)


def data_dir() -> Path:
    """``$CARBONSHIFT_DATA_DIR``, else ``<repository root>/../shared/data``."""
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parents[3]
    return (repo_root / ".." / "shared" / "data").resolve()


def resolve_trace_path(path_or_zone: str) -> Path:
    """An absolute path, a path relative to the data folder, or a zone in ``KNOWN_TRACES``."""
    if path_or_zone in KNOWN_TRACES:
        return data_dir() / KNOWN_TRACES[path_or_zone]
    path = Path(path_or_zone)
    return path if path.is_absolute() else data_dir() / path


@dataclass(frozen=True)
class Trace:
    """A loaded trace: epoch seconds (sorted, unique), values, and an optional real forecast."""

    name: str
    column: str
    times: npt.NDArray[np.float64]
    values: npt.NDArray[np.float64]
    forecast: npt.NDArray[np.float64] | None = None

    @property
    def step(self) -> float:
        return float(np.median(np.diff(self.times))) if self.times.size > 1 else 3600.0

    @property
    def period(self) -> float:
        """Length of one replay loop: first point to one step past the last."""
        return float(self.times[-1] - self.times[0] + self.step)

    @property
    def main_year(self) -> int:
        mid = (self.times[0] + self.times[-1]) / 2
        return datetime.fromtimestamp(mid, tz=timezone.utc).year


def _parse_time(text: str) -> float:
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)  # every shipped trace is in UTC
    return value.timestamp()


@functools.lru_cache(maxsize=32)
def load_trace(path: str | Path, column: str | None = None, forecast_column: str | None = None) -> Trace:
    """Read a CSV trace; ``column`` picks the value column (auto-detected when omitted)."""
    path = Path(path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise SignalConfigError(f"cannot open trace {path}: {exc.strerror}") from exc
    with handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration as exc:
            raise BadSignalData(f"trace {path} is empty") from exc
        time_col = _pick(header, _TIME_COLUMNS, path, "time")
        value_col = _pick(header, (column,) if column else _VALUE_COLUMNS, path, "value")
        fc_names = (forecast_column,) if forecast_column else _FORECAST_COLUMNS
        fc_col = next((header.index(c) for c in fc_names if c in header), None)
        times: list[float] = []
        values: list[float] = []
        forecasts: list[float] = []
        for lineno, row in enumerate(reader, start=2):
            if not row or not row[time_col].strip():
                continue
            try:
                t = _parse_time(row[time_col])
                v = float(row[value_col]) if row[value_col].strip() else float("nan")
                f = float(row[fc_col]) if fc_col is not None and row[fc_col].strip() else float("nan")
            except (ValueError, IndexError) as exc:
                raise BadSignalData(f"trace {path} line {lineno}: {exc}") from exc
            times.append(t)
            values.append(v)
            forecasts.append(f)
    if not times:
        raise BadSignalData(f"trace {path} has no rows")
    t_arr = np.array(times)
    order = np.argsort(t_arr, kind="stable")
    t_arr = t_arr[order]
    keep = np.concatenate([[True], np.diff(t_arr) > 0])  # drop duplicate timestamps
    v_arr = np.array(values)[order][keep]
    f_arr = np.array(forecasts)[order][keep] if fc_col is not None else None
    return Trace(name=path.name, column=header[value_col], times=t_arr[keep], values=v_arr, forecast=f_arr)


def _pick(header: list[str], candidates: tuple[str, ...], path: Path, what: str) -> int:
    for name in candidates:
        if name in header:
            return header.index(name)
    raise SignalConfigError(f"trace {path}: no {what} column among {list(candidates)}; header is {header}")
