"""Planner scaling: time of ``plan_jobs`` over jobs × regions × slots, and the fitted exponents.

Synthetic, seeded diurnal intensities (as bench/planner_speed.py), 5-minute slots, jobs of 5 min to
6 h with deadlines up to the horizon, no capacity limits and with capacity limits. Each point is
the median of 3 runs. Growth is near linear when the log-log slope is close to 1. Uses only the
core's public API (``build_snapshot``, ``plan_jobs``). Writes ``planner_scaling.json`` and a PNG.
Run: ``.venv/bin/python bench/planner_scaling.py``.
"""

from __future__ import annotations

import statistics
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

import common

from carbonshift.core import BatchOrder, Capacity, Job, RegionSignals, build_snapshot, plan_jobs

T0 = datetime(2020, 1, 1, tzinfo=timezone.utc)
SLOT = timedelta(minutes=5)
RUNS = 3


def regions(n_regions: int, n_slots: int, capacity: bool) -> list[RegionSignals]:
    rng = np.random.default_rng(1)
    hours = np.arange(n_slots) / 12.0
    cap = Capacity(max_concurrent_jobs=400) if capacity else Capacity()
    return [RegionSignals(f"r{i}", T0, SLOT, 300 + 120 * np.sin(2 * np.pi * (hours + 3 * i) / 24)
                          + rng.normal(0, 15, n_slots), capacity=cap) for i in range(n_regions)]


def jobs(n: int, n_regions: int, n_slots: int) -> list[Job]:
    rng = np.random.default_rng(2)
    out = []
    for i in range(n):
        submit = int(rng.integers(0, n_slots // 2))
        need = int(rng.integers(1, min(72, n_slots // 2)))
        end = int(rng.integers(submit + need, n_slots + 1))
        out.append(Job(f"j{i}", T0 + SLOT * submit, SLOT * need, T0 + SLOT * end,
                       power_w=float(rng.integers(100, 1000)), home_region=f"r{i % n_regions}"))
    return out


def timed(n: int, n_regions: int, n_slots: int, capacity: bool, runs: int = RUNS) -> float:
    snap = build_snapshot(regions(n_regions, n_slots, capacity))
    batch = jobs(n, n_regions, n_slots)
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        plan_jobs(batch, snap, order=BatchOrder.LEAST_SLACK)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def slope(xs: list[int], ys: list[float]) -> float:
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def run(quick: bool) -> dict[str, Any]:
    base = {"jobs": 100 if quick else 2000, "regions": 2 if quick else 4, "slots": 288 if quick else 576}
    axes = {"jobs": [50, 100, 200] if quick else [1000, 2000, 4000, 8000, 16000],
            "regions": [1, 2, 4] if quick else [1, 2, 4, 8, 16],
            "slots": [144, 288, 576] if quick else [144, 288, 576, 1152, 2304]}
    runs = 1 if quick else RUNS
    curves: dict[str, Any] = {}
    for capacity in (False, True):
        for axis, values in axes.items():
            points = []
            for v in values:
                size = {**base, axis: v}
                seconds = timed(size["jobs"], size["regions"], size["slots"], capacity, runs)
                points.append({**size, "seconds": round(seconds, 4)})
                print(f"scaling cap={capacity} {size}: {seconds:.3f} s", flush=True)
            key = f"{axis}{'_capacity' if capacity else ''}"
            curves[key] = {"axis": axis, "capacity": capacity, "points": points,
                           "slope": round(slope(values, [p["seconds"] for p in points]), 2)}
    diagonal = [(250, 1, 144), (500, 2, 288), (1000, 4, 576)] if quick else \
        [(500, 1, 144), (1000, 2, 288), (2000, 4, 576), (4000, 8, 1152), (8000, 16, 2304)]
    for capacity in (False, True):
        points = []
        for n, r, k in diagonal:
            seconds = timed(n, r, k, capacity, runs)
            points.append({"jobs": n, "regions": r, "slots": k, "product": n * r * k, "seconds": round(seconds, 4)})
            print(f"scaling cap={capacity} all {n}x{r}x{k}: {seconds:.3f} s", flush=True)
        curves[f"product{'_capacity' if capacity else ''}"] = {
            "axis": "product", "capacity": capacity, "points": points,
            "slope": round(slope([p["product"] for p in points], [p["seconds"] for p in points]), 2)}
    plot(curves, common.img_dir() / "planner_scaling.png")
    return {"base": base, "curves": curves, "runs": runs, "quick": quick}


def plot(curves: dict[str, Any], path: Any) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from matplotlib.ticker import LogLocator, NullFormatter

    fig, axes = plt.subplots(1, 4, figsize=(15, 3.8))
    for ax, axis in zip(axes, ("jobs", "regions", "slots", "product")):
        for capacity, style in ((False, "-o"), (True, "--s")):
            c = curves[f"{axis}{'_capacity' if capacity else ''}"]
            xs = [p[axis] for p in c["points"]]
            ys = [p["seconds"] for p in c["points"]]
            ax.loglog(xs, ys, style, label=f"{'capacity limits' if capacity else 'no limits'} (slope {c['slope']})")
            ax.loglog(xs, [ys[0] * x / xs[0] for x in xs], ":", color="0.6", lw=1)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.xaxis.set_major_locator(LogLocator(base=10))
        ax.set_xlabel("jobs × regions × slots (all grow)" if axis == "product" else axis)
        ax.set_ylabel("plan_jobs seconds")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle("plan_jobs scaling (dotted: linear); the other two dimensions fixed at the base size")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    t = time.perf_counter()
    data = run(common.quick())
    data["seconds"] = round(time.perf_counter() - t, 1)
    common.write_result("planner_scaling", data)


if __name__ == "__main__":
    main()
