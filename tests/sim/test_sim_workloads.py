"""Workloads: the next-working-day rule and the ML job population."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from carbonshift.sim.workloads import ML_JOBS, ml, next_working_day_deadline, nightly


def utc(*a: int) -> datetime:
    return datetime(*a, tzinfo=timezone.utc)


@pytest.mark.parametrize(("finish", "rule", "deadline"), [
    (utc(2020, 6, 3, 12), "paper", utc(2020, 6, 3, 12)),      # Wednesday noon: no slack
    (utc(2020, 6, 3, 7), "paper", utc(2020, 6, 3, 9)),        # before 09:00
    (utc(2020, 6, 3, 18), "paper", utc(2020, 6, 4, 9)),       # evening
    (utc(2020, 6, 6, 12), "paper", utc(2020, 6, 8, 9)),       # Saturday -> Monday
    (utc(2020, 6, 7, 12), "paper", utc(2020, 6, 8, 9)),       # Sunday -> Monday
    (utc(2020, 6, 5, 18), "paper", utc(2020, 6, 6, 9)),       # Friday evening, as the paper's code
    (utc(2020, 6, 5, 18), "workday", utc(2020, 6, 8, 9)),     # Friday evening -> Monday
])
def test_next_working_day(finish: datetime, rule: str, deadline: datetime) -> None:
    assert next_working_day_deadline(finish, rule) == deadline


def test_ml_population() -> None:
    jobs = ml()
    assert len(jobs) == ML_JOBS
    assert all(j.submit_at.weekday() < 5 and 9 <= j.submit_at.hour < 17 for j in jobs)
    assert all(timedelta(hours=4) <= j.duration < timedelta(hours=90) for j in jobs)
    assert all(j.deadline >= j.submit_at + j.duration for j in jobs)
    assert ml() == jobs


def test_nightly_is_at_one_local() -> None:
    jobs = nightly(utc(2020, 6, 1), utc(2020, 6, 5), 2.0, "Europe/Berlin")
    assert [j.nominal_start.hour for j in jobs] == [23] * len(jobs)  # 01:00 CEST = 23:00 UTC
    assert all(j.deadline - j.submit_at == timedelta(hours=4, minutes=30) for j in jobs)
