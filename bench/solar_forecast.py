"""On-site solar forecasts: how much of the jobs' energy comes from the site's PV under each forecast.

Sites: Vessim's Solcast 2022 PV traces for ten cities (normalised 0..1, 5-minute, UTC, checked
against solar noon; ``../shared/data/vessim``, Wiesner et al., Energy Informatics Review 4(5),
2024; data © Solcast, research sample), scaled to a 100 kW peak, hourly. 2022-06-11..07-06 (the
first three days are history only). The grid is a constant 300 g/kWh, so solar is the planner's
only reason to move a job. Workload (seeded): four 20 kW jobs a day (PUE 1.2) at random hours,
1-4 h long, non-interruptible, due 24 h after submission. Each job is planned once, at its
submission, by the core planner (``plan_job``) on the solar forecast issued then, net of the
power of jobs planned before it; energy is then scored on the actual PV (solar used in an hour =
min(demand, PV)). Forecasts:

- ``run at submission``: no planner, the baseline;
- ``hold 1 h``: the operator's rule without a location: the current output for one hour, then none;
- ``clear-sky``: ``core.solar.forecast_solar`` (clear-sky curve for the city, scaled by the last
  hour's and the last three days' output);
- ``perfect``: the actual PV (an upper bound for this planner).

Writes ``solar_forecast.json``. Run: ``.venv/bin/python bench/solar_forecast.py``.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd

import common

from carbonshift.core import Job, PlannerOptions, RegionSignals, build_snapshot, plan_job
from carbonshift.core.solar import forecast_solar
from carbonshift.signals.tracedata import research_data_dir

# City centres (degrees): the traces' column names.
CITIES = {"Berlin": (52.52, 13.405), "Cape Town": (-33.92, 18.42), "Hong Kong": (22.32, 114.17),
          "Lagos": (6.52, 3.38), "Mexico City": (19.43, -99.13), "Mumbai": (19.08, 72.88),
          "San Francisco": (37.77, -122.42), "Stockholm": (59.33, 18.07), "Sydney": (-33.87, 151.21),
          "São Paulo": (-23.55, -46.63)}
START = datetime(2022, 6, 8, tzinfo=timezone.utc)
HISTORY_H = 72
HORIZON_H = 48
PV_PEAK_W = 100_000.0
JOB_POWER_W = 20_000.0
PUE = 1.2
GRID_G_PER_KWH = 300.0
MODES = ("run at submission", "hold 1 h", "clear-sky", "perfect")
HOUR = timedelta(hours=1)


def load() -> pd.DataFrame:
    """Hourly normalised PV per city from START (each 5-min value covers the 5 minutes before it)."""
    frame = pd.read_csv(research_data_dir() / "vessim" / "datasets" / "solcast2022_global_actual.csv")
    index = pd.to_datetime(frame.pop("datetime")).dt.tz_localize("UTC") - pd.Timedelta(minutes=5)
    return frame.set_index(index).resample("1h").mean().loc[START:]


def workload(hours: int, seed: int = 0) -> list[tuple[int, int]]:
    """(submit hour, duration h): four jobs a day after the history, due 24 h after submission."""
    rng = np.random.default_rng(seed)
    out = []
    for day in range(HISTORY_H // 24, (hours - 24) // 24):
        for hour in np.sort(rng.integers(0, 24, size=4)):
            out.append((day * 24 + int(hour), int(rng.integers(1, 5))))
    return out


def forecast(mode: str, pv: np.ndarray, i: int, epoch: float, lat: float, lon: float) -> np.ndarray:
    if mode == "hold 1 h":
        out = np.zeros(HORIZON_H)
        out[0] = pv[i - 1]
        return out
    if mode == "clear-sky":
        return forecast_solar(pv[i - HISTORY_H:i], 3600, epoch, HORIZON_H, lat, lon)
    ahead = pv[i:i + HORIZON_H]
    return np.concatenate([ahead, np.zeros(HORIZON_H - ahead.size)])  # jobs end within 24 h: the tail is unused


def simulate(mode: str, pv: np.ndarray, epochs: np.ndarray, lat: float, lon: float,
             jobs: list[tuple[int, int]]) -> dict[str, float]:
    running = np.zeros(pv.size + HORIZON_H)  # facility W of the jobs placed so far, per hour
    for n, (submit, duration) in enumerate(jobs):
        start = submit
        if mode != "run at submission":
            at = datetime.fromtimestamp(epochs[submit], timezone.utc)
            promised = running[submit:submit + HORIZON_H]
            solar = np.maximum(forecast(mode, pv, submit, epochs[submit], lat, lon) - promised, 0.0)
            signals = RegionSignals("site", at, HOUR, np.full(HORIZON_H, GRID_G_PER_KWH), solar_w=solar, pue=PUE)
            job = Job(f"j{n}", at, duration * HOUR, at + 24 * HOUR, power_w=JOB_POWER_W, home_region="site")
            plan = plan_job(job, build_snapshot([signals]), [], PlannerOptions())
            if plan.feasible and plan.start is not None:
                start = submit + int(round((plan.start - at) / HOUR))
        running[start:start + duration] += JOB_POWER_W * PUE
    demand = running[:pv.size]
    solar_used = np.minimum(demand, pv)
    total = float(demand.sum())
    return {"demand_kwh": total / 1000, "solar_kwh": float(solar_used.sum()) / 1000,
            "green_pct": 100 * float(solar_used.sum()) / total if total else 0.0,
            "grid_kg": float((demand - solar_used).sum()) / 1000 * GRID_G_PER_KWH / 1000}


def run(quick: bool) -> dict[str, Any]:
    frame = load()
    epochs = (frame.index - pd.Timestamp("1970-01-01", tz="UTC")).total_seconds().to_numpy()
    hours = len(frame) if not quick else 8 * 24
    jobs = workload(hours)
    rows = []
    for city, (lat, lon) in (list(CITIES.items())[:3] if quick else CITIES.items()):
        pv = np.nan_to_num(frame[city].to_numpy(dtype=float)[:hours]) * PV_PEAK_W
        row: dict[str, Any] = {"city": city, "latitude": lat, "longitude": lon,
                               "pv_kwh": float(pv[HISTORY_H:].sum()) / 1000}
        for mode in MODES:
            row[mode] = simulate(mode, pv, epochs[:hours], lat, lon, jobs)
        rows.append(row)
        print(city, {m: round(row[m]["green_pct"], 1) for m in MODES}, flush=True)
    return {"quick": quick, "jobs": len(jobs), "days": (hours - HISTORY_H) // 24, "pv_peak_kw": PV_PEAK_W / 1000,
            "job_kw": JOB_POWER_W / 1000, "pue": PUE, "grid_g_per_kwh": GRID_G_PER_KWH, "modes": list(MODES),
            "rows": rows}


def main() -> None:
    t = time.perf_counter()
    data = run(common.quick())
    data["seconds"] = round(time.perf_counter() - t, 1)
    common.write_result("solar_forecast", data)


if __name__ == "__main__":
    main()
