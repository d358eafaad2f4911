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


def test_ml_jobs_are_the_papers_own_list() -> None:
    """The same 3,387 (submission, duration) pairs as Let's Wait Awhile's ``generate_batch_jobs``.

    Checked job by job against the paper's code (dos-group/lets-wait-awhile, simulate.py, commit
    5e0d155: NumPy default_rng(0), multinomial jobs per working day, sorted half-hour starts per day,
    then durations); pinned here by the list's digest (minutes from 2020-01-01 00:00 UTC).
    """
    import hashlib

    t0 = utc(2020, 1, 1)
    pairs = [(i, int((j.submit_at - t0).total_seconds()) // 60, int(j.duration.total_seconds()) // 60)
             for i, j in enumerate(ml(year=2020, seed=0))]
    assert pairs[:3] == [(0, 570, 3180), (1, 630, 3030), (2, 690, 2070)]
    assert pairs[-1] == (3386, 526530, 1200)
    digest = hashlib.sha256(repr(pairs).encode()).hexdigest()
    assert digest == "d73a5b1e64b76d9d96d7b729635c5a56d39ecac28c49545847df238261ad13f3"
