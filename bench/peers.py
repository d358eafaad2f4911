"""Peers' published decision rules as baselines, on the same DACF jobs and data as forecast_rows.

Our own implementations of the rules as their documentation states them (no code copied):
- compute-gardener-scheduler (elevated-systems, README "Scheduling Logic" and environment
  variables): a pod is held while the *current* intensity is above a threshold and released when
  its maximum scheduling delay is reached. Defaults: ``CARBON_INTENSITY_THRESHOLD=200`` g/kWh,
  ``MAX_SCHEDULING_DELAY=24h``. Here the delay is also capped by the job's latest start, so it
  never misses a deadline (the scheduler itself does not know deadlines). Also run with the best
  threshold in hindsight per row (a sweep over the grid's own intensity percentiles 5..95).
- carbon-aware-kube and the GSF Carbon Aware SDK (``/emissions/forecasts/current``: the
  lowest-average window of the job's duration between ``dataStartAt`` and ``dataEndAt`` on the
  provider's forecast): at submission, the job is placed once in the lowest-average window of the
  forecast issued then that ends before the deadline; with no such window inside the forecast it
  runs at once. Forecast: DACF day-ahead as published (known through the next UTC day from 12:00
  UTC). Neither interrupts a job, so the interruptible rows use contiguous runs for them.
Scored on actuals against the same baseline and oracle as forecast_rows. Writes ``peers.json``.
Run: ``CARBONSHIFT_RESEARCH_DATA=../shared/data .venv/bin/python bench/peers.py``.
"""

from __future__ import annotations

import math
from typing import Any

import common
import numpy as np

import forecast_rows
from carbonshift.sim import forecasts, online

CG_THRESHOLD = 200.0
CG_MAX_DELAY_H = 24.0


def _job_slots(trace: Any, jobs: list[Any], setup: online.Setup) -> tuple[list[Any], np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
    usable, core_jobs, reference = online._prepare(trace, jobs, setup)
    windows = online._windows(trace, core_jobs, setup.options)
    slot = trace.step.to_pytimedelta()
    earliest = np.array([w[0] for w in windows])
    limit = np.array([w[1] for w in windows])
    need = np.array([j.duration / slot for j in usable])
    n_slots = np.ceil(need - 1e-9).astype(int)
    return usable, earliest, limit, need, n_slots, reference


def _grams(actual: np.ndarray, start: np.ndarray, need: np.ndarray, n_slots: np.ndarray, hours: float, power_w: float) -> float:
    total = 0.0
    for s, q, d in zip(start, need, n_slots):
        ci = actual[s:s + d]
        total += float(ci[:-1].sum() + (q - (d - 1)) * ci[-1])
    return total * power_w * hours / 1000.0


def compute_gardener(actual: np.ndarray, earliest: np.ndarray, latest: np.ndarray, threshold: float,
                     max_delay: int) -> np.ndarray:
    start = np.empty_like(earliest)
    for i, (e, lat) in enumerate(zip(earliest, latest)):
        release = max(e, min(e + max_delay, lat))
        below = np.flatnonzero(actual[e:release + 1] <= threshold)
        start[i] = e + int(below[0]) if below.size else release
    return start


def lowest_window(source: forecasts.ForecastSource, earliest: np.ndarray, latest: np.ndarray, need: np.ndarray,
                  n_slots: np.ndarray) -> np.ndarray:
    start = earliest.copy()
    for i, (e, lat, q, d) in enumerate(zip(earliest, latest, need, n_slots)):
        if lat <= e:
            continue
        f = source.issue(int(e), int(lat - e + d))
        weights = np.ones(d)
        weights[-1] = q - (d - 1)
        sums = np.convolve(f, weights[::-1], mode="valid")[: lat - e + 1]
        ok = ~np.isnan(sums)
        if ok.any():
            start[i] = e + int(np.flatnonzero(ok)[np.argmin(sums[ok])])
    return start


def run(grids: list[str]) -> dict[str, Any]:
    rows = []
    for region in grids:
        trace, dacf = forecast_rows.load(region)
        actual = trace.frame[region].to_numpy(dtype=np.float64)
        hours = trace.step.total_seconds() / 3600.0
        grid = forecasts.Grid(actual, trace.frame.index[0].timestamp(), int(trace.step.total_seconds()))
        source = forecasts.day_ahead_source(grid, dacf)
        thresholds = np.percentile(actual, np.arange(5, 100, 5))
        for scenario in forecast_rows.SCENARIOS:
            jobs, interruptible = forecast_rows.jobs_for(scenario, trace, forecast_rows.GRIDS[region])
            setup = online.Setup(region=region, interruptible=interruptible)
            usable, earliest, limit, need, n_slots, ref = _job_slots(trace, jobs, setup)
            latest = np.maximum(earliest, np.floor(limit - need + 1e-9).astype(int))
            base, oracle = float(ref["baseline_g"]), float(ref["oracle_g"])

            def saved(start: np.ndarray) -> float:
                return 100.0 * (1.0 - _grams(actual, start, need, n_slots, hours, setup.power_w) / base)

            max_delay = int(round(CG_MAX_DELAY_H / hours))
            cg_default = saved(compute_gardener(actual, earliest, latest, CG_THRESHOLD, max_delay))
            cg_best, cg_best_t = -math.inf, None
            for th in thresholds:
                s = saved(compute_gardener(actual, earliest, latest, float(th), max_delay))
                if s > cg_best:
                    cg_best, cg_best_t = s, float(th)
            lw = saved(lowest_window(source, earliest, latest, need, n_slots))
            row = {"grid": region, "scenario": scenario, "jobs": len(usable),
                   "oracle_savings_pct": round(100.0 * (1 - oracle / base), 3),
                   "cg_default_pct": round(cg_default, 3), "cg_best_pct": round(cg_best, 3),
                   "cg_best_threshold": round(cg_best_t or 0.0, 1), "lowest_window_pct": round(lw, 3)}
            rows.append(row)
            print(f"peers {row}", flush=True)
    return {"rows": rows}


def report_section(data: dict[str, Any] | None, ours: dict[str, Any] | None = None) -> str:
    title = "## Peers' rules on the same jobs (DACF grids)"
    if not data or not data.get("rows"):
        return f"{title}\n\nNot run in this invocation.\n"
    ours = ours if ours is not None else common.read_result("forecast_rows")
    mine: dict[tuple[str, str], dict[str, Any]] = {}
    online_dacf = [r for r in (ours or {}).get("rows", []) if r["mode"] == "online" and r["source"] == "dacf"]
    # carbonshift's best online policy in the run: backtested when it ran, else learned
    policy = "backtested" if any(r["policy"] == "backtested" for r in online_dacf) else "learned"
    for r in online_dacf:
        if r["policy"] == policy:
            mine[(r["grid"], r["scenario"])] = r
    lines, ratios, ahead = [], [], 0
    behind: list[str] = []
    for r in data["rows"]:
        best_peer = max(r["cg_default_pct"], r["cg_best_pct"], r["lowest_window_pct"])
        m = mine.get((r["grid"], r["scenario"]))
        ours_pct = m["savings_pct"] if m else None
        ratio = ours_pct / best_peer if ours_pct is not None and best_peer > 0 else None
        if ratio is not None:
            ratios.append(ratio)
            ahead += ours_pct >= best_peer
            if ours_pct < best_peer:
                behind.append(f"{r['grid']} {r['scenario']}")
        lines.append([r["grid"], r["scenario"], f"{r['oracle_savings_pct']:.2f}%", f"{r['cg_default_pct']:.2f}%",
                      f"{r['cg_best_pct']:.2f}% (≤{r['cg_best_threshold']:.0f})", f"{r['lowest_window_pct']:.2f}%",
                      "—" if ours_pct is None else f"{ours_pct:.2f}%", common.fmt(ratio)])
    out = [title, "",
           "Savings vs the baseline (each job at its usual time: at submission, nightly jobs at 01:00), on actuals, "
           "same jobs, baseline and oracle as the section above; the peers see a job when it is submitted. Rules "
           "(`bench/peers.py`, our implementations of the documented rules): *compute-gardener* holds a job while the "
           f"current intensity is above a threshold ({CG_THRESHOLD:.0f} g/kWh by default; also the best of the grid's "
           "5th..95th percentiles in hindsight) and releases it after its maximum delay (24 h by default, capped here "
           "by the job's latest start); *lowest window* (carbon-aware-kube, GSF Carbon Aware SDK) places the job once, "
           "at submission, in the lowest-average window of the DACF forecast published by then. *carbonshift* = online, "
           f"DACF as published, {policy} policy (forecast_rows). Ratio = carbonshift ÷ best peer (savings).",
           "- Command: `CARBONSHIFT_RESEARCH_DATA=../shared/data .venv/bin/python bench/peers.py`.",
           f"- carbonshift at or ahead of the best peer on {ahead} of {len(ratios)} rows"
           + (f"; behind on {', '.join(behind)}." if behind else "."), "",
           common.table(["grid", "scenario", "oracle", "compute-gardener default", "compute-gardener best threshold",
                         "lowest window", "carbonshift online", "ratio"], lines)]
    return "\n".join(out) + "\n"


def main() -> None:
    grids = list(forecast_rows.GRIDS)
    if common.quick():
        grids = grids[:2]
    data = run(grids)
    data["command"] = "CARBONSHIFT_RESEARCH_DATA=../shared/data .venv/bin/python bench/peers.py"
    common.write_result("peers", data)


if __name__ == "__main__":
    main()
