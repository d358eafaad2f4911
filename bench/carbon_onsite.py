"""On-site solar and a battery: grid energy and gCO2eq with and without the battery.

Site: PV output from Vessim's Solcast 2022 trace for Berlin (normalised 0..1, 5-minute, UTC;
``../shared/data/vessim``, Wiesner et al., "Vessim: A Testbed for Carbon-Aware Applications and
Systems", Energy Informatics Review 4(5), 2024; data © Solcast, research sample), scaled to a
peak; grid: Electricity Maps hourly LCA intensity for Germany, same dates in 2022 (EuroSys '24
artifact, ODbL, credit "Electricity Maps"). 2022-06-08 .. 2022-07-06, hourly slots.
Workload (our own, seeded): batch jobs at random hours, 2-8 h, may finish up to 24 h after
submission, interruptible; planned by the core's LP (``plan_interruptible_lp``), which models
solar surplus, battery charging from solar and discharge. "Baseline" = the same jobs with no
slack (run at submission), planned by the same LP so solar and battery are used the same way.
Writes ``carbon_onsite.json``. Run: ``.venv/bin/python bench/carbon_onsite.py``.
"""

from __future__ import annotations

import math
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd

import common

from carbonshift.core import Battery, Job, Plan, RegionSignals, build_snapshot, plan_interruptible_lp
from carbonshift.signals.tracedata import research_data_dir

START = datetime(2022, 6, 8, tzinfo=timezone.utc)
DAYS = 28
SLOT = timedelta(hours=1)
PV_PEAK_W = 150_000.0
JOB_POWER_W = 20_000.0
PUE = 1.2
BATTERY = Battery(capacity_wh=300_000.0, state_of_charge_fraction=0.5, reserve_fraction=0.2,
                  max_discharge_w=60_000.0, max_charge_w=60_000.0, charge_efficiency=0.95)


def load(days: int) -> tuple[np.ndarray, np.ndarray]:
    """(grid intensity g/kWh, solar W) per hourly slot from START."""
    solar = pd.read_csv(research_data_dir() / "vessim" / "datasets" / "solcast2022_global_actual.csv",
                        usecols=["datetime", "Berlin"])
    # Each value is valid for the 5 minutes before its timestamp: label by the interval start.
    index = pd.to_datetime(solar["datetime"]).dt.tz_localize("UTC") - pd.Timedelta(minutes=5)
    hourly = pd.Series(solar["Berlin"].to_numpy(dtype=float), index=index).resample("1h").mean()
    hours = pd.date_range(START, periods=days * 24, freq="1h")
    pv = hourly.reindex(hours).fillna(0.0).to_numpy() * PV_PEAK_W
    folder = research_data_dir() / "decarbonization-potential" / "sim_what_ifs" / "prediction_error" / "data_output" / "added_error"
    de = pd.read_csv(folder / "DE.csv", usecols=["0"])["0"].to_numpy(dtype=np.float64)
    first = int((START - datetime(2022, 1, 1, tzinfo=timezone.utc)) / SLOT)
    return de[first: first + days * 24], pv


def workload(days: int, per_day: int, seed: int = 0) -> list[tuple[datetime, timedelta, timedelta]]:
    """(submit, duration, slack) per job; slack + duration <= 24 h."""
    rng = np.random.default_rng(seed)
    out = []
    for day in range(days - 1):
        for hour in np.sort(rng.integers(0, 24, size=per_day)):
            duration = timedelta(hours=int(rng.integers(2, 9)))
            out.append((START + timedelta(days=day, hours=int(hour)), duration, timedelta(hours=24) - duration))
    return out


def energy(plans: list[Plan], ci: np.ndarray, jobs: list[Job]) -> dict[str, float]:
    """Grid kWh, solar kWh, battery kWh and grid gCO2eq (actual intensity) of a set of plans.

    A job without a feasible plan still has to run: it is charged as run at once from the grid.
    """
    grid_wh = solar_wh = batt_wh = grams = 0.0
    h = SLOT.total_seconds() / 3600.0
    for p, job in zip(plans, jobs):
        if not p.feasible:
            first = math.ceil((job.submit_at - START) / SLOT - 1e-9)
            need = job.duration / SLOT
            for k in range(math.ceil(need - 1e-9)):
                g = job.it_power_w * PUE * h * min(1.0, need - k)
                grid_wh += g
                grams += g * ci[min(first + k, len(ci) - 1)] / 1000.0
            continue
        for k, (slot, frac) in enumerate(zip(p.slots, p.slot_fractions)):
            demand = p.facility_power_w * frac * h
            s = p.solar_wh_by_slot[k] if p.solar_wh_by_slot else 0.0
            b = p.battery_wh_by_slot[k] if p.battery_wh_by_slot else 0.0
            g = max(0.0, demand - s - b)
            grid_wh += g
            solar_wh += s
            batt_wh += b
            grams += g * ci[slot] / 1000.0
    return {"grid_kwh": round(grid_wh / 1000, 1), "solar_kwh": round(solar_wh / 1000, 1),
            "battery_kwh": round(batt_wh / 1000, 1), "grid_g": round(float(grams), 0)}


def run(quick: bool) -> dict[str, Any]:
    days = 4 if quick else DAYS
    per_day = 3 if quick else 6
    ci, pv = load(days)
    jobs_spec = workload(days, per_day)
    rows: list[dict[str, Any]] = []
    for shifted in (False, True):
        jobs = [Job(f"j{i}", s, d, s + d + (slack if shifted else timedelta(0)), power_w=JOB_POWER_W,
                    home_region="site", interruptible=True) for i, (s, d, slack) in enumerate(jobs_spec)]
        for label, battery, solar in (("grid only", None, False), ("solar", None, True), ("solar + battery", BATTERY, True)):
            region = RegionSignals("site", START, SLOT, ci, solar_w=pv if solar else None, battery=battery, pue=PUE)
            t = time.perf_counter()
            plans = plan_interruptible_lp(jobs, build_snapshot([region]))
            e = energy(plans, ci, jobs)
            misses = sum(1 for j, p in zip(jobs, plans) if p.feasible and p.end is not None and p.end > j.deadline)
            rows.append({"planner": "carbonshift (24 h slack)" if shifted else "baseline (run at submission)",
                         "site": label, **e, "jobs": len(jobs), "infeasible": sum(not p.feasible for p in plans),
                         "deadline_misses": misses, "seconds": round(time.perf_counter() - t, 2)})
            print(f"onsite {rows[-1]['planner']} {label}: {e}", flush=True)
    demand_kwh = sum(d.total_seconds() / 3600 for _, d, _ in jobs_spec) * JOB_POWER_W * PUE / 1000
    return {"days": days, "jobs": len(jobs_spec), "demand_kwh": round(demand_kwh, 1), "pv_peak_kw": PV_PEAK_W / 1000,
            "pv_energy_kwh": round(float(pv.sum()) / 1000, 1), "battery_kwh": BATTERY.capacity_wh / 1000,
            "battery": {"soc_start": BATTERY.state_of_charge_fraction, "reserve": BATTERY.reserve_fraction,
                        "max_kw": BATTERY.max_discharge_w / 1000, "efficiency": BATTERY.charge_efficiency},
            "job_kw": JOB_POWER_W / 1000, "pue": PUE, "rows": rows, "quick": quick}


def main() -> None:
    t = time.perf_counter()
    data = run(common.quick())
    data["seconds"] = round(time.perf_counter() - t, 1)
    common.write_result("carbon_onsite", data)


if __name__ == "__main__":
    main()
