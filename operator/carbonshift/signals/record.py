"""A region's forecast record as plain data, and the compact exact encoding it is kept in.

Why this module exists: the learned forecast policy (``conditioning.py``) scores a provider's
recorded forecasts for 28 days; kept in memory only, a restart would forget them and leave the
provider uncorrected for a week. The record is exported here as plain arrays and encoded into a
few tens of KB that the controller stores in the hub (``controller/forecastrecords.py``). Decoding
is the edge where stored bytes become state again, so it refuses anything malformed (wrong
magic or version, sizes that disagree, a payload that inflates past ``MAX_RAW_BYTES``) with a
``RecordError`` saying why; ``check`` then validates the values themselves (shapes, ranges,
NaN, hours). Pure: no I/O and no clock.
"""

from __future__ import annotations

import math
import struct
import zlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

__all__ = ["ForecastRecord", "RecordError", "encode_record", "decode_record", "MAX_ENCODED_BYTES", "MAX_G_PER_KWH"]

_MAGIC = b"CSFR"
FORMAT = 1
# Header: magic, format, leads, issues, measured hours, has-last-measured, last measured (epoch s),
# first issue hour, first measured hour.
_HEADER = struct.Struct("<4sBHIIBdqq")
# A stored record is at most ~130 KB raw (28 days x 24 issues x 48 leads of float32, plus the
# measured hours); anything that inflates past this is not one of ours.
MAX_RAW_BYTES = 1 << 20
MAX_ENCODED_BYTES = 512 * 1024  # well under a ConfigMap's 1 MiB
MAX_G_PER_KWH = 5000.0  # above any grid (and above signals.validate's 2000 g/kWh limit): a unit error
_MAX_HOUR = 2**31  # hours since the epoch: year ~247,000; anything later is garbage


class RecordError(ValueError):
    """A stored forecast record that cannot be used, and why."""


IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class ForecastRecord:
    """What ``ForecastConditioner`` learns from: its recorded forecasts and the values it measured.

    Hours are counted since the Unix epoch (UTC), so every one is aligned to a whole hour.
    """

    issue_hours: IntArray  # ascending, unique: the hour each recorded forecast was issued in
    issued: npt.NDArray[np.float32]  # (issues, leads) g/kWh from the issue hour on; NaN: no value
    measured_hours: IntArray  # ascending, unique
    measured_sum: npt.NDArray[np.float64]  # sum of the current values seen in each measured hour
    measured_count: IntArray  # how many were seen (>= 1)
    last_measured_s: float | None = None  # epoch seconds of the newest current value seen

    def check(self, leads: int, now_hour: int) -> None:
        """Raises ``RecordError`` unless every array has the shape, order and range a record has."""
        n = self.issue_hours.shape[0]
        if self.issue_hours.ndim != 1 or self.issued.shape != (n, leads):
            raise RecordError(f"forecasts of shape {self.issued.shape} for {n} issue hours; expected ({n}, {leads})")
        m = self.measured_hours.shape[0]
        if self.measured_hours.ndim != 1 or self.measured_sum.shape != (m,) or self.measured_count.shape != (m,):
            raise RecordError("measured hours, sums and counts differ in length")
        for what, hours in (("issue", self.issue_hours), ("measured", self.measured_hours)):
            if hours.size and (np.any(np.diff(hours) <= 0) or hours[0] < 0 or hours[-1] >= _MAX_HOUR):
                raise RecordError(f"{what} hours are not ascending, unique hours since 1970")
            if hours.size and hours[-1] > now_hour:
                raise RecordError(f"{what} hours reach {int(hours[-1]) - now_hour} h past now (the clock moved back?)")
        values = self.issued[~np.isnan(self.issued)]
        if values.size and (not np.all(np.isfinite(values)) or values.min() < 0 or values.max() > MAX_G_PER_KWH):
            raise RecordError(f"forecast values outside 0..{MAX_G_PER_KWH:g} g/kWh")
        if np.any(self.measured_count < 1) or not np.all(np.isfinite(self.measured_sum)):
            raise RecordError("measured hours with no value or a non-finite sum")
        if m:
            means = self.measured_sum / self.measured_count
            if means.min() < 0 or means.max() > MAX_G_PER_KWH:
                raise RecordError(f"measured values outside 0..{MAX_G_PER_KWH:g} g/kWh")
        last = self.last_measured_s
        if last is not None and (not math.isfinite(last) or last < 0 or last >= (now_hour + 1) * 3600):
            raise RecordError("the newest measured time is not a time before now")


def _shuffled(values: npt.NDArray[np.float32]) -> bytes:
    """float32 bytes grouped by byte position (all first bytes, then all second ...): neighbouring
    forecasts share exponents and high mantissa bits, so zlib finds far more repeats."""
    return np.ascontiguousarray(values.astype("<f4").view(np.uint8).reshape(-1, 4).T).tobytes()


def _unshuffled(data: bytes, count: int) -> npt.NDArray[np.float32]:
    planes = np.frombuffer(data, dtype=np.uint8).reshape(4, count)
    return np.ascontiguousarray(planes.T).view("<f4").reshape(count).astype(np.float32)


def encode_record(record: ForecastRecord) -> bytes:
    """The record, exact (float32 values as recorded), zlib-compressed."""
    n, leads = record.issued.shape
    m = record.measured_hours.shape[0]
    first_issue = int(record.issue_hours[0]) if n else 0
    first_measured = int(record.measured_hours[0]) if m else 0
    last = record.last_measured_s
    header = _HEADER.pack(_MAGIC, FORMAT, leads, n, m, last is not None, last or 0.0, first_issue, first_measured)
    body = b"".join([
        (record.issue_hours - first_issue).astype("<u4").tobytes(),
        _shuffled(record.issued.reshape(-1)),
        (record.measured_hours - first_measured).astype("<u4").tobytes(),
        record.measured_sum.astype("<f8").tobytes(),
        record.measured_count.astype("<u4").tobytes(),
    ])
    return zlib.compress(header + body, 6)


def decode_record(data: bytes) -> ForecastRecord:
    """The record in ``data`` (from ``encode_record``); ``RecordError`` if it is not one."""
    if len(data) > MAX_ENCODED_BYTES:
        raise RecordError(f"{len(data)} bytes, more than the {MAX_ENCODED_BYTES} a record may take")
    inflate = zlib.decompressobj()
    try:
        raw = inflate.decompress(data, MAX_RAW_BYTES)
    except zlib.error as exc:
        raise RecordError(f"not zlib data ({exc})") from None
    if inflate.unconsumed_tail:
        raise RecordError(f"inflates past {MAX_RAW_BYTES} bytes")
    if not inflate.eof:
        raise RecordError("truncated")
    if len(raw) < _HEADER.size:
        raise RecordError("shorter than its header")
    magic, version, leads, n, m, has_last, last, first_issue, first_measured = _HEADER.unpack_from(raw)
    if magic != _MAGIC:
        raise RecordError("not a forecast record")
    if version != FORMAT:
        raise RecordError(f"format {version}, this operator reads format {FORMAT}")
    sizes = [4 * n, 4 * n * leads, 4 * m, 8 * m, 4 * m]
    if _HEADER.size + sum(sizes) != len(raw):
        raise RecordError(f"{len(raw)} bytes do not hold the {n} forecasts of {leads} hours and {m} measured hours "
                          "its header announces")
    parts, at = [], _HEADER.size
    for size in sizes:
        parts.append(raw[at: at + size])
        at += size
    return ForecastRecord(
        issue_hours=np.frombuffer(parts[0], "<u4").astype(np.int64) + first_issue,
        issued=_unshuffled(parts[1], n * leads).reshape(n, leads),
        measured_hours=np.frombuffer(parts[2], "<u4").astype(np.int64) + first_measured,
        measured_sum=np.frombuffer(parts[3], "<f8").astype(np.float64),
        measured_count=np.frombuffer(parts[4], "<u4").astype(np.int64),
        last_measured_s=last if has_last else None,
    )
