"""Workloads for the simulator, modelled on the Let's Wait Awhile scenarios.

Why this module exists: the paper's two scenarios are the published yardstick for temporal
shifting (Wiesner et al., "Let's Wait Awhile: How Temporal Workload Shifting Can Reduce Carbon
Emissions in the Cloud", Middleware '21, doi:10.1145/3464298.3493399). This is our own
implementation of the scenarios as described by the paper and its repository:

- ``nightly``: one 30-minute job a day at 01:00 local time; it may start up to ``window`` hours
  earlier or later (it is known ``window`` hours ahead), baseline = 01:00.
- ``ml``: 3387 machine-learning jobs in the year, submitted on working days (Mon–Fri) between 09:00
  and 17:00 on the half hour, spread over days by a multinomial draw; durations uniform on the
  half hour in [4 h, 90 h). A job may finish as late as the start of the next working day: if it
  would end (run immediately) before 09:00 the deadline is 09:00 that day; after 17:00 or on
  Sunday, 09:00 the next day; on Saturday, 09:00 on Monday; within 09:00–17:00 of a working day
  there is no flexibility. Rule ``paper`` follows the paper's code exactly, in which an end on
  Friday evening gets Saturday 09:00; rule ``workday`` moves that to Monday 09:00. Times are
  UTC, as in the paper's data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

ML_JOBS = 3387
SLOT = timedelta(minutes=30)


@dataclass(frozen=True)
class SimJob:
    """A job of the workload: ``nominal_start`` is when it runs without carbonshift."""

    id: str
    submit_at: datetime
    nominal_start: datetime
    duration: timedelta
    deadline: datetime


def nightly(start: datetime, end: datetime, window_h: float, tz: str = "UTC") -> list[SimJob]:
    zone = ZoneInfo(tz)
    jobs = []
    day = start.astimezone(zone).date()
    window = timedelta(hours=window_h)
    duration = timedelta(minutes=30)
    while True:
        local = datetime(day.year, day.month, day.day, 1, 0, tzinfo=zone)
        nominal = local.astimezone(timezone.utc)
        if nominal >= end:
            break
        if nominal - window >= start:
            jobs.append(SimJob(f"nightly-{day.isoformat()}", nominal - window, nominal, duration, nominal + window + duration))
        day = day + timedelta(days=1)
    return jobs


def next_working_day_deadline(finish: datetime, rule: str = "paper") -> datetime:
    """Deadline of an ML job that would finish at ``finish`` when run immediately."""
    nine = finish.replace(hour=9, minute=0, second=0, microsecond=0)
    weekday = finish.weekday()
    hour = finish.hour + finish.minute / 60.0
    if weekday == 5:
        return nine + timedelta(days=2)
    if weekday == 6:
        return nine + timedelta(days=1)
    if hour > 17:
        if rule == "workday" and weekday == 4:
            return nine + timedelta(days=3)
        return nine + timedelta(days=1)
    if hour < 9:
        return nine
    return finish


def ml(year: int = 2020, n: int = ML_JOBS, seed: int = 0, rule: str = "paper") -> list[SimJob]:
    rng = np.random.default_rng(seed)
    days = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="D", tz="UTC")
    workdays = [d for d in days if d.weekday() < 5]
    per_day = rng.multinomial(n, np.full(len(workdays), 1.0 / len(workdays)))
    start_minutes = np.arange(9 * 60, 17 * 60, 30)
    submits: list[datetime] = []
    for day, count in zip(workdays, per_day):
        for minute in np.sort(rng.choice(start_minutes, size=int(count))):
            submits.append(day.to_pydatetime() + timedelta(minutes=int(minute)))
    durations = rng.choice(np.arange(4 * 60, 90 * 60, 30), size=n)
    jobs = []
    for i, (submit, minutes) in enumerate(zip(submits, durations)):
        duration = timedelta(minutes=int(minutes))
        jobs.append(SimJob(f"ml-{i}", submit, submit, duration, next_working_day_deadline(submit + duration, rule)))
    return jobs
