"""Planner speed benchmark: prints a markdown table.

Scenario: 4 regions, 48 h of 5-minute slots (576 slots), jobs of 5 min - 6 h with deadlines up to
the horizon, synthetic diurnal intensities (seeded). Measures one-job latency (median of many
``plan_job`` calls on a prebuilt snapshot) and the time to plan 10,000 jobs with ``plan_jobs``,
without and with capacity limits, and interruptible (median of 3 runs each).
Run: ``.venv/bin/python bench/planner_speed.py``.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from datetime import datetime, timedelta, timezone

import numpy as np

from carbonshift.core import BatchOrder, Capacity, Job, RegionSignals, build_snapshot, plan_job, plan_jobs

T0 = datetime(2020, 1, 1, tzinfo=timezone.utc)
SLOT = timedelta(minutes=5)
N_SLOTS = 48 * 12
REGIONS = ("de", "gb", "fr", "nl")
BATCH_RUNS = 3  # the machine is shared: report the median


def regions(capacity: bool) -> list[RegionSignals]:
    rng = np.random.default_rng(1)
    hours = np.arange(N_SLOTS) / 12.0
    out = []
    for i, name in enumerate(REGIONS):
        ci = 300 + 120 * np.sin(2 * np.pi * (hours + 3 * i) / 24) + rng.normal(0, 15, N_SLOTS)
        cap = Capacity(max_concurrent_jobs=400, power_budget_w=400_000) if capacity else Capacity()
        out.append(RegionSignals(name, T0, SLOT, ci, capacity=cap))
    return out


def jobs(n: int, interruptible: bool = False) -> list[Job]:
    rng = np.random.default_rng(2)
    out = []
    for i in range(n):
        submit = int(rng.integers(0, N_SLOTS // 2))
        need = int(rng.integers(1, 72))
        end = int(rng.integers(submit + need, N_SLOTS + 1))
        out.append(Job(f"j{i}", T0 + SLOT * submit, SLOT * need, T0 + SLOT * end, power_w=float(rng.integers(100, 1000)),
                       home_region=REGIONS[i % 4], interruptible=interruptible))
    return out


def main() -> None:
    rows = []
    snap = build_snapshot(regions(False))
    one = jobs(200)
    for j in one[:20]:
        plan_job(j, snap)
    times = []
    for j in one:
        t = time.perf_counter()
        plan_job(j, snap)
        times.append(time.perf_counter() - t)
    rows.append(("1 job, non-interruptible (median of 200)", f"{statistics.median(times) * 1e3:.3f} ms"))
    times = []
    for j in jobs(200, True):
        t = time.perf_counter()
        plan_job(j, snap)
        times.append(time.perf_counter() - t)
    rows.append(("1 job, interruptible (median of 200)", f"{statistics.median(times) * 1e3:.3f} ms"))
    for label, caps, inter in [("10,000 jobs, no capacity limits", False, False),
                               ("10,000 jobs, capacity limits (greedy, least slack)", True, False),
                               ("10,000 jobs, interruptible, no capacity limits", False, True)]:
        batch = jobs(10_000, inter)
        snap = build_snapshot(regions(caps))
        runs = []
        for _ in range(BATCH_RUNS):
            t = time.perf_counter()
            plans = plan_jobs(batch, snap, order=BatchOrder.LEAST_SLACK)
            runs.append(time.perf_counter() - t)
        feasible = sum(p.feasible for p in plans)
        spread = f"{min(runs):.2f}–{max(runs):.2f}"
        rows.append((label, f"{statistics.median(runs):.2f} s (median of {BATCH_RUNS}: {spread}; {feasible} feasible)"))
    print(f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, NumPy {np.__version__}")
    print()
    print("| Case (4 regions, 48 h of 5-min slots) | Time |")
    print("|---|---|")
    for label, value in rows:
        print(f"| {label} | {value} |")


if __name__ == "__main__":
    main()
