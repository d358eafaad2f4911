"""Go-style durations ("6h", "90m", "1h30m") at the CRD edge, ``timedelta`` inside.

Kubernetes users write durations the way Go's ``time.ParseDuration`` reads them, and the API
server's CEL ``duration()`` understands the same syntax, so the CRDs use it. Python code works
with ``timedelta``. This module is the one place where the two meet: a parser, a formatter, the
regular expression the CRD schema uses to refuse malformed strings, and a pydantic type that
validates from the string and serialises back to it.

Only non-negative durations are accepted, with the units ``h``, ``m``, ``s``, ``ms``, ``us`` and
``ns`` (ASCII only, so the schema pattern and this parser agree). Fractions are allowed
("1.5h"); anything finer than a microsecond is truncated, as Go truncates below a nanosecond.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal
from typing import Annotated, Any, Final

from pydantic import BeforeValidator, JsonValue, PlainSerializer, WithJsonSchema

__all__ = [
    "DURATION_MAX_LENGTH",
    "DURATION_PATTERN",
    "Duration",
    "duration_cel_rule",
    "format_duration",
    "parse_duration",
]

#: The regular expression a duration string must match (anchored; used verbatim in the CRDs).
DURATION_PATTERN: Final = r"^(0|([0-9]+(\.[0-9]+)?(ns|us|ms|s|m|h))+)$"
#: Longest duration string the CRDs accept; bounds the cost of CEL rules on durations.
DURATION_MAX_LENGTH: Final = 32

_NANOS_PER_UNIT: Final[dict[str, int]] = {
    "ns": 1,
    "us": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_FULL: Final = re.compile(DURATION_PATTERN)
_TERM: Final = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ns|us|ms|s|m|h)")


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration such as ``"1h30m"`` into a ``timedelta``.

    Raises ``ValueError`` (with the offending text) when ``text`` is not a duration.
    """
    if not isinstance(text, str) or not _FULL.match(text):
        raise ValueError(
            f"invalid duration {text!r}: use a number and a unit, e.g. '6h', '90m', '1h30m' "
            "(units h, m, s, ms, us, ns)"
        )
    if text == "0":
        return timedelta(0)
    nanos = Decimal(0)
    for number, unit in _TERM.findall(text):
        nanos += Decimal(number) * _NANOS_PER_UNIT[unit]
    micros = int(nanos // 1000)  # truncate below a microsecond
    try:
        return timedelta(microseconds=micros)
    except OverflowError as exc:
        raise ValueError(f"invalid duration {text!r}: too long") from exc


def format_duration(value: timedelta) -> str:
    """Format a non-negative ``timedelta`` as a compact Go-style duration (``"1h30m"``, ``"0s"``).

    ``parse_duration(format_duration(td)) == td`` for every non-negative ``td``.
    """
    if value < timedelta(0):
        raise ValueError(f"negative duration {value!r} cannot be formatted")
    micros = (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if micros == 0:
        return "0s"
    if micros < 1_000_000:
        return f"{micros // 1000}ms" if micros % 1000 == 0 else f"{micros}us"
    hours, rest = divmod(micros, 3_600_000_000)
    minutes, rest = divmod(rest, 60_000_000)
    seconds, fraction = divmod(rest, 1_000_000)
    parts = []
    if hours:
        parts.append(f"{hours}h")
    if minutes:
        parts.append(f"{minutes}m")
    if seconds or fraction:
        text = str(seconds)
        if fraction:
            text += "." + f"{fraction:06d}".rstrip("0")
        parts.append(f"{text}s")
    return "".join(parts)


def _validate(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise ValueError("a duration must not be negative")
        return value
    if isinstance(value, str):
        return parse_duration(value)
    raise ValueError(f"a duration must be a string like '1h30m', not {type(value).__name__}")


#: A ``timedelta`` that reads and writes Go-style duration strings and documents itself as such
#: in JSON schema (and so in the CRDs).
Duration = Annotated[
    timedelta,
    BeforeValidator(_validate),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": DURATION_PATTERN,
            "maxLength": DURATION_MAX_LENGTH,
        }
    ),
]


def duration_cel_rule(path: str, *, positive: bool = False) -> dict[str, JsonValue]:
    """An ``x-kubernetes-validations`` rule for a duration string at ``path``.

    The schema's ``pattern`` already refuses malformed strings, but the API server evaluates CEL
    rules as well, so the ``duration()`` call is guarded by the same pattern: a malformed string
    gets one clear message instead of an evaluation error.
    """
    guard = f"self.matches(r'{DURATION_PATTERN}')"
    if positive:
        return {
            "rule": f"!{guard} || duration(self) > duration('0s')",
            "message": f"{path} must be greater than 0s, e.g. '30m' or '2h'",
        }
    return {"rule": guard, "message": f"{path} must be a duration such as '6h', '90m' or '1h30m'"}
