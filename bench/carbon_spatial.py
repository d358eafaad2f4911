"""Spatial + temporal shifting across regions with capacity limits vs. the best single region.

Data: Electricity Maps hourly LCA intensity, 2022 (the real trace, column ``0`` of
``decarbonization-potential/sim_what_ifs/prediction_error/data_output/added_error/<ZONE>.csv``,
from Sukprasert et al., "On the Limitations of Carbon-Aware Temporal and Spatial Workload
Shifting in the Cloud", EuroSys '24; ODbL, credit "Electricity Maps"; see that folder's SOURCE.md).
Workload: the Let's Wait Awhile ML scenario drawn for 2022 (3,387 jobs, next working day), homes
assigned round-robin to the zones, 1 kW each. Forecast = actual + 5% Gaussian noise (seed 0);
emissions evaluated on actuals; online planning in arrival order (``BatchOrder.AS_GIVEN``). A job
that is not placed is charged as run at once in its home zone (it still has to run); each row
also has a lower bound on any placement's emissions (``core.emissions_lower_bound``).
Writes ``carbon_spatial.json``. Run: ``.venv/bin/python bench/carbon_spatial.py``.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np

import common

from carbonshift.core import BatchOrder, Capacity, Job, Plan, RegionSignals, emissions_lower_bound, plan_jobs
from carbonshift.sim import engine, workloads
from carbonshift.signals.tracedata import research_data_dir

ZONES = ("DE", "GB", "ES", "IE", "SE-SE1")
START = datetime(2022, 1, 1, tzinfo=timezone.utc)
SLOT = timedelta(minutes=30)  # the hourly values repeated: ML jobs start on the half hour
POWER_W = 1000.0
HOURS = SLOT.total_seconds() / 3600.0


def load(zones: tuple[str, ...]) -> dict[str, np.ndarray]:
    import pandas as pd

    folder = research_data_dir() / "decarbonization-potential" / "sim_what_ifs" / "prediction_error" / "data_output" / "added_error"
    return {z: np.repeat(pd.read_csv(folder / f"{z}.csv", usecols=["0"])["0"].to_numpy(dtype=np.float64), 2)
            for z in zones}


def signals(values: dict[str, np.ndarray], zones: tuple[str, ...], capacity: int | None) -> list[RegionSignals]:
    return [RegionSignals(z, START, SLOT, values[z], capacity=Capacity(max_concurrent_jobs=capacity)) for z in zones]


def grams(plan: Plan, actual: dict[str, np.ndarray]) -> float:
    if plan.region is None or not plan.feasible:
        return math.nan
    ci = actual[plan.region][list(plan.slots)]
    return float((np.asarray(plan.slot_fractions) * ci).sum() * plan.facility_power_w * HOURS / 1000.0)


def baseline_g(job: Job, actual: dict[str, np.ndarray]) -> float:
    assert job.home_region is not None
    first = math.ceil((job.submit_at - START) / SLOT - 1e-9)
    need = job.duration / SLOT
    whole = math.ceil(need - 1e-9)
    ci = actual[job.home_region][first: first + whole]
    return float(ci[:-1].sum() + (need - (whole - 1)) * ci[-1]) * POWER_W * HOURS / 1000.0


def run(quick: bool) -> dict[str, Any]:
    zones = ZONES
    actual = load(zones)
    n_slots = min(len(v) for v in actual.values())
    end = START + SLOT * n_slots
    raw = [j for j in workloads.ml(year=2022, seed=0) if j.deadline <= end]
    if quick:
        raw = raw[:250]
    rng = np.random.default_rng(0)
    forecast = {z: v + rng.normal(0.0, 0.05 * float(v.mean()), v.shape[0]) for z, v in actual.items()}
    span = (max(j.deadline for j in raw) - min(j.submit_at for j in raw)).total_seconds()
    concurrency = sum(j.duration.total_seconds() for j in raw) / span
    cap = max(2, math.ceil(0.4 * concurrency))  # each region holds 40% of the mean load: 2x room in total

    def make_jobs(allowed_of: Any) -> list[Job]:
        return [Job(j.id, j.submit_at, j.duration, j.deadline, power_w=POWER_W, home_region=zones[i % len(zones)],
                    allowed_regions=allowed_of(zones[i % len(zones)])) for i, j in enumerate(raw)]

    home_jobs = make_jobs(lambda h: (h,))
    base = sum(baseline_g(j, actual) for j in home_jobs)
    rows: list[dict[str, Any]] = []

    def evaluate(label: str, jobs: list[Job], capacity: int | None, zs: tuple[str, ...], note: str = "") -> None:
        t = time.perf_counter()
        at_once = [baseline_g(j, actual) for j in jobs]  # the price of a job not placed: it runs anyway

        def total(plans: list[Plan]) -> float:
            return sum(grams(p, actual) if p.feasible and p.region else u for p, u in zip(plans, at_once))

        plans = plan_jobs(jobs, signals(forecast, zs, capacity), order=BatchOrder.AS_GIVEN)
        oracle = plan_jobs(jobs, signals(actual, zs, capacity), order=BatchOrder.AS_GIVEN)
        g, o = total(plans), total(oracle)
        bound = emissions_lower_bound(jobs, signals(actual, zs, capacity), at_once, upper_g=min(g, o))
        unplaced = sum(not p.feasible for p in plans)
        misses = sum(1 for j, p in zip(jobs, plans) if p.feasible and p.end is not None and p.end > j.deadline)
        by_region: dict[str, int] = {}
        for p in plans:
            if p.feasible and p.region:
                by_region[p.region] = by_region.get(p.region, 0) + 1
        if unplaced:
            by_region["not placed"] = unplaced
        rows.append({"case": label, "capacity_per_region": capacity, "jobs": len(jobs), "baseline_g": round(base, 1),
                     "planned_g": round(g, 1), "oracle_g": round(o, 1), "bound_g": round(bound.grams, 1),
                     "bound_exact": bound.exact, **engine.savings_fields(base, g, o, bound.grams),
                     "unplaced_jobs": unplaced, "oracle_unplaced_jobs": sum(not p.feasible for p in oracle),
                     "deadline_misses": misses, "by_region": by_region, "note": note,
                     "seconds": round(time.perf_counter() - t, 2)})
        print(f"spatial {label}: {rows[-1]['savings_pct']}% unplaced={unplaced} bound {rows[-1]['bound_savings_pct']}%",
              flush=True)

    evaluate("temporal only (home region, no capacity limits)", home_jobs, None, zones)
    evaluate("spatial + temporal, capacity limits", make_jobs(lambda h: zones), cap, zones)
    evaluate("spatial + temporal, no capacity limits", make_jobs(lambda h: zones), None, zones)
    means = {z: float(v.mean()) for z, v in actual.items()}
    best = min(means, key=means.__getitem__)
    evaluate(f"best single region ({best}), temporal, no capacity limits", make_jobs(lambda h: (best,)), None, (best,),
             "needs all the work in one region: ignores the capacity limit")
    evaluate(f"best single region ({best}), temporal, same capacity limit", make_jobs(lambda h: (best,)), cap, (best,),
             "jobs that do not fit are not placed: they run at once in their home zone and are counted so")
    return {"zones": list(zones), "mean_g_per_kwh": {z: round(m, 1) for z, m in means.items()}, "capacity": cap,
            "mean_concurrency": round(concurrency, 1), "rows": rows, "quick": quick}


def main() -> None:
    t = time.perf_counter()
    data = run(common.quick())
    data["seconds"] = round(time.perf_counter() - t, 1)
    common.write_result("carbon_spatial", data)


if __name__ == "__main__":
    main()
