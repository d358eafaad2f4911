"""Temporal shifting on the Let's Wait Awhile traces (Germany, Great Britain 2020).

Scenarios (our implementation of Wiesner et al., "Let's Wait Awhile", Middleware '21,
doi:10.1145/3464298.3493399, data from dos-group/lets-wait-awhile, see
../shared/data/lets-wait-awhile/SOURCE.md): nightly jobs at 01:00 local time, ±2/4/8 h; ML jobs
to the next working day; interruptible or not; forecast error 0, 5% and 10% (Gaussian noise,
std = error × mean intensity; seeds averaged). Calls the simulator's engine directly
(``carbonshift.sim.engine.run``). Writes ``carbon_temporal.json`` and two PNGs.
Run: ``.venv/bin/python bench/carbon_temporal.py`` (``BENCH_QUICK=1`` for a small version).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import common

from carbonshift.core import BatchOrder, Job, RegionSignals, plan_jobs
from carbonshift.sim import engine, traces, workloads
from carbonshift.signals.tracedata import research_data_dir

REGIONS = {"ger": ("Germany", "Europe/Berlin"), "gb": ("Great Britain", "Europe/London")}
PUBLISHED = {("ger", False): 5.91, ("ger", True): 7.93, ("gb", False): 6.56, ("gb", True): 9.03}


def _row(region: str, workload: str, flex: str, inter: bool, error: float, smoothing: int,
         result: dict[str, Any], seconds: float) -> dict[str, Any]:
    published = PUBLISHED.get((region, inter)) if workload == "ml" and error == 0.05 and smoothing == 0 else None
    return {"region": region, "workload": workload, "flexibility": flex, "interruptible": inter,
            "forecast_error": error, "smoothing": smoothing, "published_pct": published, "seconds": round(seconds, 2),
            **{k: result[k] for k in ("jobs", "baseline_g", "planned_g", "oracle_g", "savings_pct",
                                      "oracle_savings_pct", "fraction_of_oracle", "deadline_misses", "unplaced_jobs",
                                      "repetitions")}}


def scenarios(quick: bool) -> list[tuple[str, float | None, bool, float, int]]:
    """(workload, nightly window h or None, interruptible, forecast error, smoothing)."""
    out: list[tuple[str, float | None, bool, float, int]] = []
    windows = (4.0,) if quick else (2.0, 4.0, 8.0)
    errors = (0.05,) if quick else (0.0, 0.05, 0.10)
    for window in windows:
        for inter in (False, True):
            for error in errors:
                out.append(("nightly", window, inter, error, 0))
    for inter in ((False,) if quick else (False, True)):
        for error in errors:
            out.append(("ml", None, inter, error, 0))
            if error > 0 and not quick:
                out.append(("ml", None, inter, error, 3))
    return out


def run(quick: bool) -> dict[str, Any]:
    reps = 1 if quick else 5
    rows: list[dict[str, Any]] = []
    for region, (_, tz) in REGIONS.items():
        trace = traces.load([f"{region}={research_data_dir() / 'lets-wait-awhile' / f'{region}_ci.csv'}"])
        ml_jobs = workloads.ml(year=2020, seed=0)
        if quick:
            ml_jobs = ml_jobs[:300]
        for workload, window, inter, error, smoothing in scenarios(quick):
            if workload == "nightly":
                assert window is not None
                start = datetime(2019, 12, 31, tzinfo=timezone.utc)
                jobs = workloads.nightly(start, datetime(2021, 1, 1, tzinfo=timezone.utc) + timedelta(hours=window),
                                         window, tz)
                flex = f"±{window:g} h"
            else:
                jobs, flex = ml_jobs, "next working day"
            scenario = engine.Scenario(regions=(region,), home=region, interruptible=inter, forecast_error=error,
                                       repetitions=reps if error > 0 else 1, forecast_smoothing_slots=smoothing)
            t = time.perf_counter()
            result = engine.run(trace, jobs, scenario, bound=False)  # no capacity limits: the bound is the oracle
            rows.append(_row(region, workload, flex, inter, error, smoothing, result, time.perf_counter() - t))
            print(f"temporal {region} {workload} {flex} inter={inter} err={error} smooth={smoothing}: "
                  f"{result['savings_pct']}% (oracle {result['oracle_savings_pct']}%)", flush=True)
    plot_windows(common.img_dir() / "intensity_windows.png")
    plot_savings_vs_window(rows, common.img_dir() / "savings_vs_window.png")
    return {"rows": rows, "repetitions": reps, "quick": quick}


def plot_windows(path: Any) -> None:
    """One week of German intensity with the ML jobs' baseline and chosen (oracle-free, 5%-error) windows."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    trace = traces.load([f"ger={research_data_dir() / 'lets-wait-awhile' / 'ger_ci.csv'}"])
    week0 = datetime(2020, 3, 2, tzinfo=timezone.utc)
    week1 = week0 + timedelta(days=7)
    jobs = [j for j in workloads.ml(year=2020, seed=0) if week0 <= j.submit_at and j.deadline <= week1 + timedelta(days=3)]
    jobs = [j for j in jobs if j.duration <= timedelta(hours=12)][:8]
    frame = trace.frame
    start = frame.index[0].to_pydatetime()
    values = frame["ger"].to_numpy(dtype=float)
    rng = np.random.default_rng(0)
    forecast = values + rng.normal(0, 0.05 * values.mean(), values.shape[0])
    signals = [RegionSignals("ger", start, trace.step.to_pytimedelta(), forecast)]
    core_jobs = [Job(j.id, j.submit_at, j.duration, j.deadline, power_w=1000.0, home_region="ger") for j in jobs]
    plans = plan_jobs(core_jobs, signals, order=BatchOrder.AS_GIVEN)
    window = frame.loc[week0: week1 + timedelta(days=3)]
    fig, ax = plt.subplots(figsize=(11, 4.5))
    ax.plot(window.index, window["ger"], color="0.3", lw=1, label="Germany 2020, gCO2eq/kWh (actual)")
    top = float(window["ger"].max())
    for i, (job, plan) in enumerate(zip(jobs, plans)):
        y = top + 15 + i * 12
        ax.plot([job.submit_at, job.submit_at + job.duration], [y, y], color="tab:red", lw=4, alpha=0.6,
                label="run at submission (baseline)" if i == 0 else None)
        if plan.start is not None and plan.end is not None:
            ax.plot([plan.start, plan.end], [y - 4, y - 4], color="tab:green", lw=4,
                    label="carbonshift window (5% forecast error)" if i == 0 else None)
        ax.plot([job.deadline], [y], marker="|", color="k", ms=8)
    ax.set_ylabel("gCO2eq/kWh")
    ax.set_title("ML jobs (next working day): baseline vs. chosen windows, Germany, March 2020")
    ax.legend(loc="lower left", fontsize=8)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_savings_vs_window(rows: list[dict[str, Any]], path: Any) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for region, (label, _) in REGIONS.items():
        for inter, style in ((False, "-o"), (True, "--s")):
            pts = sorted((float(r["flexibility"].strip("±h ")), r["savings_pct"]) for r in rows
                         if r["region"] == region and r["workload"] == "nightly" and r["interruptible"] == inter
                         and r["forecast_error"] == 0.05)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], style,
                        label=f"{label}, {'interruptible' if inter else 'not interruptible'}")
    ax.set_xlabel("flexibility window either side of 01:00 (h)")
    ax.set_ylabel("savings vs. no shifting (%)")
    ax.set_title("Nightly jobs, 5% forecast error (Let's Wait Awhile data, 2020)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main() -> None:
    t = time.perf_counter()
    data = run(common.quick())
    data["seconds"] = round(time.perf_counter() - t, 1)
    common.write_result("carbon_temporal", data)


if __name__ == "__main__":
    main()
