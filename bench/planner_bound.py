"""The greedy planner against a lower bound on emissions, under capacity limits.

With capacity limits the batch planner is a greedy heuristic (jobs placed one by one in arrival
order), so "the planner fed actual values" (the oracle of the other tables) is not the optimum. This
bench puts the oracle and a 5%-noise forecast plan next to ``core.emissions_lower_bound`` (a
Lagrangian relaxation no placement can beat, same accounting: a job not placed is charged as run
at once in its home region). ``fraction_of_bound`` = the plan's saving ÷ the bound's saving: the
plan gets at least that fraction of the best possible saving.
Data: the Let's Wait Awhile traces (Germany, Great Britain 2020), ML jobs to the next working day
(3,387 jobs, 1 kW each, home Germany). Writes ``planner_bound.json``.
Run: ``CARBONSHIFT_RESEARCH_DATA=../shared/data .venv/bin/python bench/planner_bound.py`` (``BENCH_QUICK=1``: 300 jobs).
"""

from __future__ import annotations

import time
from typing import Any

import common

from carbonshift.signals.tracedata import research_data_dir
from carbonshift.sim import engine, traces, workloads

# (label, regions, capacity per region, interruptible)
CASES: tuple[tuple[str, tuple[str, ...], int | None, bool], ...] = (
    ("Germany + Great Britain, 2 jobs each (issue #16's case)", ("ger", "gb"), 2, False),
    ("Germany + Great Britain, 8 jobs each", ("ger", "gb"), 8, False),
    ("Germany + Great Britain, 16 jobs each", ("ger", "gb"), 16, False),
    ("Germany only, 8 jobs", ("ger",), 8, False),
    ("Germany only, 8 jobs, interruptible", ("ger",), 8, True),
    ("Germany + Great Britain, no limits", ("ger", "gb"), None, False),
)


def run(quick: bool) -> dict[str, Any]:
    folder = research_data_dir() / "lets-wait-awhile"
    trace = traces.load([f"ger={folder / 'ger_ci.csv'}", f"gb={folder / 'gb_ci.csv'}"])
    jobs = workloads.ml(year=2020, seed=0)
    if quick:
        jobs = jobs[:300]
    rows: list[dict[str, Any]] = []
    for label, regions, cap, inter in CASES:
        capacity = dict.fromkeys(regions, cap) if cap is not None else {}
        t = time.perf_counter()
        oracle = engine.run(trace, jobs, engine.Scenario(regions=regions, home="ger", capacity=capacity, interruptible=inter))
        noisy = engine.run(trace, jobs, engine.Scenario(regions=regions, home="ger", capacity=capacity, interruptible=inter,
                                                        forecast_error=0.05, seed=0), bound=False)
        seconds = time.perf_counter() - t
        fields = engine.savings_fields(oracle["baseline_g"], noisy["planned_g"], oracle["oracle_g"], oracle["bound_g"])
        rows.append({"case": label, "regions": list(regions), "capacity": cap, "interruptible": inter,
                     "jobs": oracle["jobs"], "baseline_g": oracle["baseline_g"], "oracle_g": oracle["oracle_g"],
                     "oracle_unplaced": oracle["unplaced_jobs"], "bound_g": oracle["bound_g"],
                     "bound_exact": oracle["bound_exact"], "oracle_savings_pct": oracle["oracle_savings_pct"],
                     "bound_savings_pct": oracle["bound_savings_pct"],
                     "oracle_fraction_of_bound": oracle["fraction_of_bound"],
                     "forecast_g": noisy["planned_g"], "forecast_unplaced": noisy["unplaced_jobs"],
                     "forecast_savings_pct": fields["savings_pct"], "forecast_fraction_of_oracle": fields["fraction_of_oracle"],
                     "forecast_fraction_of_bound": fields["fraction_of_bound"], "seconds": round(seconds, 1)})
        print(f"bound {label}: oracle {oracle['oracle_savings_pct']}% bound {oracle['bound_savings_pct']}% "
              f"fraction {oracle['fraction_of_bound']} ({seconds:.0f} s)", flush=True)
    return {"rows": rows, "quick": quick}


def main() -> None:
    t = time.perf_counter()
    data = run(common.quick())
    data["seconds"] = round(time.perf_counter() - t, 1)
    common.write_result("planner_bound", data)


if __name__ == "__main__":
    main()
