"""Go-style durations: the table of what parses to what, and round-trips under Hypothesis."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from carbonshift.api.duration import (
    DURATION_MAX_LENGTH,
    DURATION_PATTERN,
    Duration,
    duration_cel_rule,
    format_duration,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", timedelta(0)),
        ("0s", timedelta(0)),
        ("6h", timedelta(hours=6)),
        ("90m", timedelta(minutes=90)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1h30m15s", timedelta(hours=1, minutes=30, seconds=15)),
        ("1.5h", timedelta(hours=1, minutes=30)),
        ("0.5s", timedelta(milliseconds=500)),
        ("250ms", timedelta(milliseconds=250)),
        ("7us", timedelta(microseconds=7)),
        ("1500ns", timedelta(microseconds=1)),  # truncated below a microsecond
        ("999ns", timedelta(0)),
        ("48h", timedelta(days=2)),
        ("30m30m", timedelta(hours=1)),  # Go accepts repeated units
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "6", "h", "1d", "-1h", "+1h", "1 h", "1H", "1.h", ".5h", "1h 30m", "P1D", "1µs", "10x", " 1h"],
)
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(0), "0s"),
        (timedelta(hours=6), "6h"),
        (timedelta(minutes=90), "1h30m"),
        (timedelta(days=2, seconds=1), "48h1s"),
        (timedelta(seconds=1, milliseconds=500), "1.5s"),
        (timedelta(milliseconds=250), "250ms"),
        (timedelta(microseconds=1500), "1500us"),
        (timedelta(minutes=1, microseconds=5), "1m0.000005s"),
    ],
)
def test_format(value: timedelta, expected: str) -> None:
    assert format_duration(value) == expected
    assert re.fullmatch(DURATION_PATTERN, expected)


def test_format_refuses_negative() -> None:
    with pytest.raises(ValueError):
        format_duration(timedelta(seconds=-1))


durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3650))


@given(durations)
def test_round_trip(value: timedelta) -> None:
    text = format_duration(value)
    assert re.fullmatch(DURATION_PATTERN, text)
    assert len(text) <= DURATION_MAX_LENGTH
    assert parse_duration(text) == value


@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.sampled_from(["h", "m", "s", "ms", "us", "ns"])),
        min_size=1,
        max_size=4,
    )
)
def test_parse_sums_terms(terms: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in terms)
    nanos = {"h": 3600 * 10**9, "m": 60 * 10**9, "s": 10**9, "ms": 10**6, "us": 10**3, "ns": 1}
    total = sum(n * nanos[unit] for n, unit in terms)
    assert parse_duration(text) == timedelta(microseconds=total // 1000)


class _Holder(BaseModel):
    d: Duration


def test_pydantic_type_reads_and_writes_strings() -> None:
    holder = _Holder.model_validate({"d": "90m"})
    assert holder.d == timedelta(minutes=90)
    assert holder.model_dump(mode="json") == {"d": "1h30m"}
    assert holder.model_dump() == {"d": timedelta(minutes=90)}
    assert _Holder(d=timedelta(hours=1)).d == timedelta(hours=1)


@pytest.mark.parametrize("bad", ["soon", "-1h", 3600, timedelta(seconds=-5)])
def test_pydantic_type_refuses(bad: object) -> None:
    with pytest.raises(ValidationError):
        _Holder.model_validate({"d": bad})


def test_cel_rule_is_guarded_by_the_pattern() -> None:
    rule = duration_cel_rule("spec.x", positive=True)
    expression, message = str(rule["rule"]), str(rule["message"])
    assert expression.startswith("!self.matches(")
    assert "duration(self) > duration('0s')" in expression
    assert "spec.x" in message
