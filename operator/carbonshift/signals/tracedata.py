"""Carbon-intensity traces (CSV): the ones shipped in the package, and files from a data folder.

Bundled traces (``KNOWN_TRACES``) are gzip'd package data in ``carbonshift/data`` read through
``importlib.resources``, so they work in a wheel, an image or a plain clone; their licences and
sources are in ``carbonshift/data/SOURCE.md``. Research traces that may not be redistributed live
outside the package; ``research_data_dir`` is the one place that says where.

A MemberCluster's trace path comes from the cluster's configuration, but its errors reach every
tenant (job conditions, status, the log): ``resolve_member_trace`` keeps it to the bundled names and
the admin's data folder, and no error raised here quotes a byte of the file.
"""

from __future__ import annotations

import csv
import functools
import gzip
import io
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path
from typing import IO

import numpy as np
import numpy.typing as npt

from carbonshift.timefmt import parse_iso

from .errors import BadSignalData, SignalConfigError

__all__ = [
    "KNOWN_TRACES", "RESEARCH_DATA_ENV", "BundledTrace", "Trace", "TraceRef", "load_trace", "open_trace",
    "research_data_dir", "resolve_member_trace", "resolve_trace_path",
]

RESEARCH_DATA_ENV = "CARBONSHIFT_RESEARCH_DATA"

#: Bundled name (a grid zone) -> what it holds; the file is ``carbonshift/data/<name>.csv.gz``.
KNOWN_TRACES: dict[str, str] = {
    "DE": "Electricity Maps 2022, hourly, LCA (ODbL)",
    "GB": "Electricity Maps 2022, hourly, LCA (ODbL)",
    "ES": "Electricity Maps 2022, hourly, LCA (ODbL)",
    "NO": "Electricity Maps 2022, hourly, LCA (ODbL)",
    "BR": "Electricity Maps 2022, hourly, LCA (ODbL)",
    "US-CAL-CISO": "Electricity Maps 2022, hourly, LCA (ODbL)",
    "SE": "DACF 2021-07..12, hourly, with day-ahead forecast (Apache-2.0)",
    "US-MIDA-PJM": "DACF 2021-07..12, hourly, with day-ahead forecast (Apache-2.0)",
    "US-TEX-ERCO": "DACF 2021-07..12, hourly, with day-ahead forecast (Apache-2.0)",
    "US-NE-ISNE": "DACF 2021-07..12, hourly, with day-ahead forecast (Apache-2.0)",
}

_TIME_COLUMNS = ("Time", "Datetime (UTC)", "UTC time", "datetime", "time", "timestamp")
_VALUE_COLUMNS = (
    "Carbon Intensity",
    "Carbon Intensity gCO₂eq/kWh (LCA)",
    "carbon_intensity",
    "Caiso_North",
)
_FORECAST_COLUMNS = ("carbon_from_src_forecasts",)


@dataclass(frozen=True)
class BundledTrace:
    """A trace shipped in the package."""

    zone: str

    @property
    def name(self) -> str:
        return f"{self.zone}.csv.gz"


TraceRef = BundledTrace | Path


def research_data_dir() -> Path:
    """Research data that is not redistributable: ``$CARBONSHIFT_RESEARCH_DATA``, else ``<repo>/../shared/data``.

    Only benchmarks and tests marked ``research_data`` read it; nothing the operator runs does.
    """
    env = os.environ.get(RESEARCH_DATA_ENV)
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3].parent / "shared" / "data"


def resolve_trace_path(path_or_zone: str) -> TraceRef:
    """For command-line tools run by the user: a bundled name, or any file path (relative to the cwd)."""
    if path_or_zone in KNOWN_TRACES:
        return BundledTrace(path_or_zone)
    return Path(path_or_zone)


def resolve_member_trace(path: str, data_dir: Path | None) -> TraceRef:
    """A MemberCluster's ``trace.path``: a bundled name, or a file inside the admin's data folder.

    Relative paths are taken inside ``data_dir``; absolute ones, ``..`` and symlinks must still end
    up inside it. The message names the rule, never the data folder's content.
    """
    if path in KNOWN_TRACES:
        return BundledTrace(path)
    rule = (f"carbonSignal.trace.path must be a bundled trace ({', '.join(sorted(KNOWN_TRACES))}) "
            "or a file inside the operator's data folder (operator setting dataDir)")
    if data_dir is None:
        raise SignalConfigError(f"{rule}; {path!r} is not a bundled trace and no data folder is set")
    root = Path(os.path.realpath(data_dir))
    candidate = Path(os.path.realpath(root / path))  # an absolute path replaces root; symlinks are followed
    if candidate == root or not candidate.is_relative_to(root):
        raise SignalConfigError(f"{rule}; {path!r} is outside it")
    return candidate


def open_trace(ref: TraceRef) -> IO[str]:
    """The trace as text; ``.gz`` files are decompressed. Raises ``SignalConfigError`` if it cannot be opened."""
    if isinstance(ref, BundledTrace):
        if ref.zone not in KNOWN_TRACES:
            raise SignalConfigError(f"no bundled trace {ref.zone!r}; bundled: {', '.join(sorted(KNOWN_TRACES))}")
        raw: IO[bytes] = resources.files("carbonshift").joinpath("data", ref.name).open("rb")
        return io.TextIOWrapper(gzip.GzipFile(fileobj=raw), encoding="utf-8", newline="")
    try:
        if not stat.S_ISREG(ref.stat().st_mode):  # a FIFO or a device would block or never end
            raise SignalConfigError(f"cannot open trace {ref}: not a regular file")
        if ref.suffix == ".gz":
            return io.TextIOWrapper(gzip.open(ref, "rb"), encoding="utf-8", newline="")
        return ref.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise SignalConfigError(f"cannot open trace {ref}: {exc.strerror}") from None


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
    return parse_iso(text).timestamp()  # naive times are UTC: every shipped trace is in UTC


@functools.lru_cache(maxsize=32)
def load_trace(ref: str | TraceRef, column: str | None = None, forecast_column: str | None = None) -> Trace:
    """Read a CSV trace; ``column`` picks the value column (auto-detected when omitted).

    Errors name the trace, the line and the column, never the file's content: the file may be
    anything the operator can read, and the message ends up where tenants read it.
    """
    ref = Path(ref) if isinstance(ref, str) else ref
    name = ref.name
    with open_trace(ref) as handle:
        try:
            return _parse(name, csv.reader(handle), column, forecast_column)
        except (UnicodeDecodeError, csv.Error, EOFError, gzip.BadGzipFile, OSError):
            pass  # their messages may quote the bytes read: raised below, outside this block, with no context
    raise BadSignalData(f"trace {name} is not a readable UTF-8 CSV file")


def _parse(name: str, reader: Iterator[list[str]], column: str | None, forecast_column: str | None) -> Trace:
    header = next(reader, None)
    if header is None:
        raise BadSignalData(f"trace {name} is empty")
    time_col = _pick(header, _TIME_COLUMNS, name, "time")
    value_col = _pick(header, (column,) if column else _VALUE_COLUMNS, name, "value")
    fc_names = (forecast_column,) if forecast_column else _FORECAST_COLUMNS
    fc_col = next((header.index(c) for c in fc_names if c in header), None)
    times: list[float] = []
    values: list[float] = []
    forecasts: list[float] = []
    for lineno, row in enumerate(reader, start=2):
        if not row or len(row) <= time_col or not row[time_col].strip():
            continue
        parsed = _parse_row(row, time_col, value_col, fc_col)
        if parsed is None:
            raise BadSignalData(f"trace {name} line {lineno}: not an ISO 8601 time and numbers in the expected columns")
        t, v, f = parsed
        times.append(t)
        values.append(v)
        forecasts.append(f)
    if not times:
        raise BadSignalData(f"trace {name} has no rows")
    t_arr = np.array(times)
    order = np.argsort(t_arr, kind="stable")
    t_arr = t_arr[order]
    keep = np.concatenate([[True], np.diff(t_arr) > 0])  # drop duplicate timestamps
    v_arr = np.array(values)[order][keep]
    f_arr = np.array(forecasts)[order][keep] if fc_col is not None else None
    return Trace(name=name, column=header[value_col], times=t_arr[keep], values=v_arr, forecast=f_arr)


def _parse_row(row: list[str], time_col: int, value_col: int, fc_col: int | None) -> tuple[float, float, float] | None:
    """(time, value, forecast), or None: the caller raises without this block's exception (it quotes the cell)."""
    try:
        t = _parse_time(row[time_col])
        v = float(row[value_col]) if row[value_col].strip() else float("nan")
        f = float(row[fc_col]) if fc_col is not None and row[fc_col].strip() else float("nan")
    except (ValueError, IndexError, OverflowError):
        return None
    return t, v, f


def _pick(header: list[str], candidates: tuple[str, ...], name: str, what: str) -> int:
    for candidate in candidates:
        if candidate in header:
            return header.index(candidate)
    # The header is file content too: only the expected names are quoted.
    raise SignalConfigError(f"trace {name}: no {what} column; expected one of {list(candidates)}")
