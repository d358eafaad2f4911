"""Checks that detect suspicious signal data and report it, instead of trusting it silently.

``inspect`` returns every issue found as data; ``ensure_valid`` raises ``StaleSignal`` or
``BadSignalData`` (listing all issues) so a decision is never built on bad numbers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from carbonshift.timefmt import ensure_utc

from .errors import BadSignalData, StaleSignal
from .series import G_PER_KWH, Series, SeriesKind

__all__ = ["Limits", "Issue", "inspect", "ensure_valid", "check_zone"]


@dataclass(frozen=True)
class Limits:
    """Thresholds for ``inspect``; the defaults suit grid carbon intensity in gCO2eq/kWh."""

    max_age: timedelta = timedelta(hours=2)
    max_value: float = 2000.0  # no real grid exceeds ~1200 g/kWh; above 2000 is a unit error
    min_value: float = 0.0
    max_gap: timedelta = timedelta(hours=6)
    max_zero_run: timedelta = timedelta(hours=1)  # zeros lasting longer than this are reported


@dataclass(frozen=True)
class Issue:
    """One problem found in a series: a stable ``code`` and a sentence for people."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def inspect(series: Series, *, now: datetime, limits: Limits = Limits()) -> list[Issue]:
    """Every issue in ``series`` at time ``now`` (empty list when it looks sound)."""
    issues: list[Issue] = []
    if not series.points:
        return [Issue("empty", f"{series.source} returned no data points")]
    values = [v for _, v in series.points]
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        issues.append(Issue("not-finite", f"{len(bad)} values are NaN or infinite"))
    negative = [v for v in values if math.isfinite(v) and v < limits.min_value]
    if negative:
        issues.append(Issue("negative", f"{len(negative)} values below {limits.min_value} (min {min(negative)})"))
    absurd = [v for v in values if math.isfinite(v) and v > limits.max_value]
    if absurd:
        hint = " (wrong units? expected gCO2eq/kWh)" if series.unit == G_PER_KWH else ""
        issues.append(Issue("absurd-magnitude", f"{len(absurd)} values above {limits.max_value} (max {max(absurd)}){hint}"))
    issues.extend(_zero_runs(series, limits.max_zero_run))
    for (t0, _), (t1, _) in zip(series.points, series.points[1:]):
        if t1 - t0 > limits.max_gap:
            issues.append(Issue("gap", f"no data from {t0.isoformat()} to {t1.isoformat()} ({t1 - t0})"))
    if series.kind is SeriesKind.ACTUAL or series.kind is SeriesKind.FORECAST:
        age = series.age(ensure_utc(now))
        if age > limits.max_age:
            issues.append(Issue("stale", f"observed at {series.observed_at.isoformat()}, {age} old (max {limits.max_age})"))
        if series.observed_at - ensure_utc(now) > timedelta(minutes=15):
            issues.append(Issue("future-observation", f"observed_at {series.observed_at.isoformat()} is in the future"))
    return issues


def _zero_runs(series: Series, max_run: timedelta) -> list[Issue]:
    issues: list[Issue] = []
    run_start: datetime | None = None
    points = series.points
    for i, (t, v) in enumerate(points):
        if v == 0.0:
            if run_start is None:
                run_start = t
            run_end = points[i + 1][0] if i + 1 < len(points) else t
            if run_end - run_start > max_run and (i + 1 == len(points) or points[i + 1][1] != 0.0):
                issues.append(Issue("zero-run", f"zeros from {run_start.isoformat()} for {run_end - run_start}"))
        else:
            run_start = None
    return issues


def ensure_valid(series: Series, *, now: datetime, limits: Limits = Limits()) -> Series:
    """Return ``series`` if sound; raise ``StaleSignal`` or ``BadSignalData`` otherwise."""
    issues = inspect(series, now=now, limits=limits)
    data_issues = [i for i in issues if i.code != "stale"]
    if data_issues:
        raise BadSignalData(
            f"{series.source}: untrustworthy data: " + "; ".join(map(str, data_issues)),
            issues=[str(i) for i in data_issues],
        )
    if issues:
        age = series.age(ensure_utc(now))
        raise StaleSignal(f"{series.source}: {issues[0].message}", age_seconds=age.total_seconds())
    return series


def check_zone(requested: str, answered: object, source: str) -> None:
    """Raise ``BadSignalData`` if the provider answered for a different zone than asked."""
    if answered is None:
        return
    if str(answered).strip().lower() != requested.strip().lower():
        raise BadSignalData(
            f"{source}: asked for zone {requested!r} but the response is for {answered!r}",
            issues=[f"wrong-zone: {answered!r} != {requested!r}"],
        )
