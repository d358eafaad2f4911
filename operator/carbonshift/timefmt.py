"""Times as carbonshift reads and writes them: timezone-aware UTC inside, RFC 3339 with ``Z`` outside.

The one place that turns text into datetimes and back, for status fields, Leases, Events,
provider queries and trace files alike (there were eight private copies, each a little different).
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal

__all__ = ["ensure_utc", "iso_z", "micro_z", "parse_iso", "parse_timestamp", "to_iso"]

TimeSpec = Literal["auto", "minutes", "seconds", "milliseconds", "microseconds"]


def ensure_utc(value: datetime) -> datetime:
    """Return ``value`` as an aware UTC datetime; naive datetimes are refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r}: carbonshift only uses timezone-aware UTC")
    return value.astimezone(timezone.utc)


def to_iso(moment: datetime, timespec: TimeSpec = "auto") -> str:
    """``2025-06-01T06:00:00Z`` (microseconds only when there are some, as ``isoformat`` does)."""
    return ensure_utc(moment).isoformat(timespec=timespec).replace("+00:00", "Z")


def iso_z(value: datetime) -> str:
    """``2024-05-01T12:00:00Z``, whole seconds: the form every provider accepts in query strings."""
    return to_iso(value, "seconds")


def micro_z(moment: datetime) -> str:
    """``2024-05-01T12:00:00.000000Z``: a Kubernetes MicroTime (Lease renewTime), always 6 digits."""
    return to_iso(moment, "microseconds")


def parse_iso(text: str) -> datetime:
    """An RFC 3339 / ISO-8601 time (``Z`` or an offset; a naive one is taken as UTC), in UTC.

    Raises ``ValueError`` for anything else.
    """
    value = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)


def parse_timestamp(value: object) -> datetime:
    """:func:`parse_iso` for a value from outside (a provider's answer) that may not be text at all.

    Raises ``ValueError`` (providers translate it into ``BadSignalData``).
    """
    if not isinstance(value, str) or not value:
        raise ValueError(f"not a timestamp: {value!r}")
    return parse_iso(value)
