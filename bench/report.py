"""Assembles docs/benchmarks.md from the bench results (JSON in the results folder).

Why this module exists: `make bench` rewrites the whole file, but the "Planner speed" section
belongs to the core engineer: it is copied verbatim from the current file, and the fresh output
of bench/planner_speed.py (saved by hack/bench.sh as ``planner_speed.txt``) goes into a section of
its own. Sections whose results are missing (e.g. the operator run skipped) say so.
Run: ``.venv/bin/python bench/report.py [--output docs/benchmarks.md] [--previous docs/benchmarks.md]``.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

import common
import forecast_rows
import peers
from common import fmt, table

DOC = common.REPO_ROOT / "docs" / "benchmarks.md"
PLANNER_SPEED_HEADING = "## Planner speed"

LWA_CITE = ("Wiesner, Behnke, Scheinert, Gontarska, Thamsen, \"Let's Wait Awhile: How Temporal Workload Shifting "
            "Can Reduce Carbon Emissions in the Cloud\", Middleware '21, ACM, doi:10.1145/3464298.3493399 "
            "(data: repository `dos-group/lets-wait-awhile`, ENTSO-E generation with IPCC life-cycle factors)")
EM_CITE = ("Electricity Maps hourly life-cycle intensity, 2022, as published with Sukprasert, Souza, Bashir, Irwin, "
           "Shenoy, \"On the Limitations of Carbon-Aware Temporal and Spatial Workload Shifting in the Cloud\", "
           "EuroSys '24 (repository `umassos/decarbonization-potential`; ODbL — data © Electricity Maps)")
VESSIM_CITE = ("Vessim's Solcast 2022 PV trace (Berlin) — Wiesner, Behnke, Kilian, Steinke, Kao, \"Vessim: A Testbed "
               "for Carbon-Aware Applications and Systems\", ACM SIGENERGY Energy Informatics Review 4(5), 2024; "
               "data © Solcast, used as a research sample")


def planner_speed_section(previous: Path) -> str:
    """The "## Planner speed" section of the previous file, verbatim (owned by the core engineer)."""
    if not previous.exists():
        return ""
    text = previous.read_text()
    start = text.find("\n" + PLANNER_SPEED_HEADING + "\n")
    if start < 0:
        return ""
    rest = text[start + 1:]
    nxt = re.search(r"^## ", rest[len(PLANNER_SPEED_HEADING):], flags=re.M)
    return rest if nxt is None else rest[: len(PLANNER_SPEED_HEADING) + nxt.start()]


NOT_RUN = "Not run in this invocation."
# Experiments measured with their own commands (named in the section), not by ``make bench``: kept verbatim.
EXPERIMENTS_HEADING = "## Forecast policy experiments"


def keep_previous(section: str, previous: str) -> str:
    """``section``, or when its bench did not run this time, the same section of the previous file verbatim.

    So running some benchmarks and then report.py (``BENCH_SKIP_OPERATOR=1``, one script alone)
    never wipes the others' results. Sections are matched by their "## " heading up to the first
    "(" or ":" (a section that did not run has a shorter heading).
    """
    if NOT_RUN not in section or not previous:
        return section
    heading = section.split("\n", 1)[0]
    key = re.split(r"[(:]", heading, maxsplit=1)[0].strip()
    for match in re.finditer(r"^## .*$", previous, flags=re.M):
        line = match.group(0)
        if line.startswith(key) and (line == key or line[len(key)] in " (:"):
            if key == PLANNER_SPEED_HEADING and not line.startswith(f"{PLANNER_SPEED_HEADING}:"):
                continue  # "## Planner speed" itself is kept by planner_speed_section
            rest = previous[match.start():]
            nxt = re.search(r"^## ", rest[3:], flags=re.M)
            return (rest if nxt is None else rest[: 3 + nxt.start()]).rstrip() + "\n"
    return section


def pct(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f}%"


def frac(v: float | None) -> str:
    """A fraction of the oracle's or the bound's saving; "—" when that reference saves nothing."""
    return "—" if v is None else f"{v:.4f}"


def temporal(data: dict[str, Any] | None) -> str:
    if not data:
        return "## Temporal shifting (Let's Wait Awhile data)\n\nNot run in this invocation.\n"
    rows = data["rows"]
    names = {"ger": "Germany", "gb": "Great Britain"}
    out = ["## Temporal shifting (Let's Wait Awhile data)", "",
           f"Data: 2020 grid carbon intensity for Germany (15-min) and Great Britain (30-min, then 15-min), from {LWA_CITE}.",
           "Scenarios are our own implementation of the paper's (`operator/carbonshift/sim/workloads.py`): *nightly* — one "
           "30-minute job a day at 01:00 local time that may move ±2/4/8 h; *ML* — 3,387 jobs on 2020 working days "
           "09:00–17:00 UTC, 4–90 h long, that may finish by the start of the next working day. Forecast = actual + "
           f"i.i.d. Gaussian noise with std = error × mean intensity, {data['repetitions']} noise seeds averaged; decisions "
           "on the forecast, emissions on actual values; baseline = run at submission; oracle = the same planner fed actual "
           "values; 1 kW per job. \"smoothing 3\" = the forecast denoised by a 3-slot centred moving average "
           "(`--forecast-smoothing 3`). Deadline misses are counted over all seeds.", "",
           "### ML jobs to the next working day, vs. the published numbers", ""]
    ml = [r for r in rows if r["workload"] == "ml"]
    published = {(r["region"], r["interruptible"]): r["published_pct"] for r in ml if r["published_pct"] is not None}
    out.append(table(
        ["Region", "Interruptible", "Forecast error", "Forecast", "Baseline kgCO2eq", "carbonshift kgCO2eq",
         "Oracle kgCO2eq", "Savings", "Oracle savings", "Fraction of oracle", "Published (5% error)", "Deadline misses"],
        [[names[r["region"]], "yes" if r["interruptible"] else "no", f"{r['forecast_error']:.0%}",
          "smoothing 3" if r["smoothing"] else ("actual" if r["forecast_error"] == 0 else "raw"),
          fmt(r["baseline_g"] / 1000, 0), fmt(r["planned_g"] / 1000, 0), fmt(r["oracle_g"] / 1000, 0),
          pct(r["savings_pct"]), pct(r["oracle_savings_pct"]), frac(r["fraction_of_oracle"]),
          pct(published.get((r["region"], r["interruptible"]))) if r["forecast_error"] == 0.05 else "",
          r["deadline_misses"]] for r in ml]))
    out += ["", "### Nightly jobs (01:00 local time, ±window)", ""]
    nightly = [r for r in rows if r["workload"] == "nightly"]
    out.append(table(
        ["Region", "Window", "Interruptible", "Forecast error", "Baseline gCO2eq", "carbonshift gCO2eq", "Oracle gCO2eq",
         "Savings", "Oracle savings", "Fraction of oracle", "Deadline misses"],
        [[names[r["region"]], r["flexibility"], "yes" if r["interruptible"] else "no", f"{r['forecast_error']:.0%}",
          fmt(r["baseline_g"], 0), fmt(r["planned_g"], 0), fmt(r["oracle_g"], 0), pct(r["savings_pct"]),
          pct(r["oracle_savings_pct"]), frac(r["fraction_of_oracle"]), r["deadline_misses"]] for r in nightly]))
    misses = sum(r["deadline_misses"] for r in rows)
    versus = []
    for (region, inter), published_pct in sorted(published.items()):
        mine = {r["smoothing"]: r["savings_pct"] for r in ml if r["region"] == region and r["interruptible"] == inter
                and r["forecast_error"] == 0.05}
        versus.append(f"{names[region]}, {'interruptible' if inter else 'not interruptible'}: raw forecast "
                      f"{pct(mine.get(0))}" + (f", smoothing 3 {pct(mine.get(3))}" if 3 in mine else "")
                      + f" vs. {pct(published_pct)} published")
    out += ["", f"Deadline misses over all temporal scenarios: **{misses}**.", "",
            "ML at 5% error against the paper: " + "; ".join(versus) + ".", "",
            "Reading it: the ML jobs are the paper's own list, not a sample like it: `workloads.ml()` draws the "
            "same 3,387 (submission, duration) pairs as the paper's `generate_batch_jobs` (repository "
            "`dos-group/lets-wait-awhile`, `simulate.py`: NumPy `default_rng(0)`, same draws in the same order; checked "
            "job by job against that code and pinned by `tests/sim/test_sim_workloads.py`), with the deadlines of its "
            "next-working-day rule. The remaining differences to the published figures come from the setup: the paper "
            "reads the intensity at each :00 and :30 of the 15-minute series while we average each 30-minute slot; it "
            "averages 10 noise seeds drawn on its series, we average "
            f"{data['repetitions']} drawn on ours; and its forecast starts with the actual current value, ours is noisy "
            "from the first slot. Interruptible work gains most from a denoised forecast: picking the cheapest slots of "
            "a noisy forecast picks slots whose noise happened to be negative. Nightly jobs gain more per job with a "
            "wider window; a 30-minute job has nothing to interrupt, so interruptible and not are nearly equal. No "
            "job goes unplaced here (no capacity limits); a fraction of the oracle is \"—\" when the oracle saves "
            "nothing.", "",
            "![intensity and chosen windows](img/intensity_windows.png)", "",
            "![savings vs. flexibility window](img/savings_vs_window.png)", ""]
    return "\n".join(out)


def spatial(data: dict[str, Any] | None) -> str:
    if not data:
        return "## Spatial + temporal shifting\n\nNot run in this invocation.\n"
    means = ", ".join(f"{z} {m:.0f}" for z, m in data["mean_g_per_kwh"].items())
    out = ["## Spatial + temporal shifting across regions, with capacity limits", "",
           f"Data: {EM_CITE}; zones and their 2022 mean intensity (gCO2eq/kWh): {means}. The hourly values are "
           "repeated onto a 30-minute grid. Workload: the ML scenario above drawn for 2022, each job's home zone "
           "assigned round-robin, 1 kW each; forecast = actual + 5% noise (seed 0); emissions on actual values; jobs "
           f"planned online in arrival order. Capacity limit: {data['capacity']} concurrent jobs per zone (the mean "
           f"concurrency of the whole workload is {data['mean_concurrency']}, so the zones together have about twice "
           "the room the work needs, and one zone alone can hold 40% of it).", ""]
    out.append(table(
        ["Case", "Jobs", "Not placed", "Baseline kgCO2eq", "carbonshift kgCO2eq", "Oracle kgCO2eq", "Bound kgCO2eq",
         "Savings", "Oracle savings", "Bound savings", "Fraction of oracle", "Fraction of bound", "Deadline misses",
         "Jobs per zone"],
        [[r["case"], r["jobs"], r["unplaced_jobs"], fmt(r["baseline_g"] / 1000, 0), fmt(r["planned_g"] / 1000, 0),
          fmt(r["oracle_g"] / 1000, 0), fmt(r["bound_g"] / 1000, 0), pct(r["savings_pct"]),
          pct(r["oracle_savings_pct"]), pct(r["bound_savings_pct"]), frac(r["fraction_of_oracle"]),
          frac(r["fraction_of_bound"]), r["deadline_misses"],
          ", ".join(f"{k} {v}" for k, v in sorted(r["by_region"].items()))]
         for r in data["rows"]]))
    out += ["", "Every job is counted: a job that is not placed (no zone has room before its deadline) still has to "
            "run, so it is charged as run at once in its home zone, in the carbonshift and the oracle totals alike. "
            "\"Bound\" is a lower bound on the emissions of any placement under the same limits and accounting "
            "(`core.emissions_lower_bound`, a Lagrangian relaxation; see \"Greedy planner vs. a lower bound\" below); "
            "\"Fraction of bound\" = savings ÷ bound savings, so carbonshift gets at least that share of the best "
            "possible saving. Without limits the bound is exact: each job at its cheapest.", "",
            "Reading it: with a very clean zone in the set (SE-SE1), moving work there dominates everything temporal "
            "shifting can do; the best single region without limits is the lower bound, but it needs all the work in "
            "one place. Under the capacity limit that zone alone cannot take the work: the jobs that do not fit run at "
            "once in their home zones, which is why that row saves far less, while spatial + temporal planning fills "
            "the clean zone to its limit and shifts the rest in time across the others, with no deadline misses.",
            *bound_gap_lines(data["rows"]), ""]
    return "\n".join(out)


def bound_gap_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One sentence per capacity-limited row: how much of the best possible saving the greedy plan gets."""
    limited = [r for r in rows if r.get("capacity_per_region") and r.get("fraction_of_bound") is not None]
    if not limited:
        return []
    parts = [f"{r['case']}: {frac(r['fraction_of_bound'])} ({pct(r['savings_pct'])} of {pct(r['bound_savings_pct'])})"
             for r in limited]
    return ["", "Under the capacity limit the greedy plan (online, in arrival order) is not optimal, and the bound "
            "shows by how much at most: share of the bound's saving — " + "; ".join(parts) + ". Arrival order "
            "hands the clean zone's room to whoever comes first; a plan that knew the whole year could keep it for "
            "the jobs that save most per slot held."]


def planner_bound(data: dict[str, Any] | None) -> str:
    if not data:
        return f"{BOUND_HEADING}\n\nNot run in this invocation.\n"
    out = [BOUND_HEADING, "",
           "Command: `CARBONSHIFT_RESEARCH_DATA=../shared/data .venv/bin/python bench/planner_bound.py`. With capacity "
           "limits the batch planner is greedy (jobs placed one by one in arrival order, as they arrive online), so the "
           "oracle of the other tables — the same planner fed actual values — is not the optimum, and a plan on a noisy "
           "forecast can even beat it. The bound is a number no placement can beat: the Lagrangian relaxation of the "
           "capacity constraints (`core/bound.py`; the best of up to 150 projected subgradient steps; its maximum is "
           "the LP relaxation over whole runs), with the same accounting as the plans (a job not placed is charged as "
           "run at once in its home region). Data: Let's Wait Awhile 2020 traces, the paper's 3,387 ML jobs, home "
           "Germany, 1 kW each; the forecast plan has 5% Gaussian noise (seed 0). \"Oracle ÷ bound\" = the greedy "
           "plan's saving on actual values ÷ the bound's saving: the planner's own gap, forecast errors aside; the "
           "optimum lies between the two, so the true gap is at most that.", ""]
    out.append(table(
        ["Case", "Jobs", "Not placed (oracle)", "Oracle savings", "Bound savings", "Oracle ÷ bound",
         "Bound exact", "5% forecast savings", "Forecast ÷ oracle", "Forecast ÷ bound", "Seconds"],
        [[r["case"], r["jobs"], r["oracle_unplaced"], pct(r["oracle_savings_pct"]), pct(r["bound_savings_pct"]),
          frac(r["oracle_fraction_of_bound"]), "yes" if r["bound_exact"] else "no", pct(r["forecast_savings_pct"]),
          frac(r["forecast_fraction_of_oracle"]), frac(r["forecast_fraction_of_bound"]), fmt(r["seconds"], 0)]
         for r in data["rows"]]))
    out += ["", "\"Bound exact\" = no capacity constraint binds at the bound's solution, so it is the optimum itself. "
            "Where the limits bind hard (2 jobs per region for a workload whose mean concurrency is about 18), greedy "
            "arrival-order placement gives capacity to whoever comes first, while the bound may keep it for the jobs "
            "that save most per slot held; with more room the gap closes.", ""]
    return "\n".join(out)


BOUND_HEADING = "## Greedy planner vs. a lower bound (capacity limits)"


def onsite(data: dict[str, Any] | None) -> str:
    if not data:
        return "## On-site solar and a battery\n\nNot run in this invocation.\n"
    out = ["## On-site solar and a battery", "",
           f"Site: {data['pv_peak_kw']:.0f} kW peak PV following {VESSIM_CITE}; grid: {EM_CITE.split(', as published')[0]} "
           f"for Germany, same dates. {data['days']} days from 2022-06-08, hourly slots; {data['jobs']} interruptible jobs "
           f"of {data['job_kw']:.0f} kW IT (PUE {data['pue']}), 2–8 h, submitted at random hours, each may finish up to 24 h "
           f"after submission; demand {fmt(data['demand_kwh'], 0)} kWh, PV production {fmt(data['pv_energy_kwh'], 0)} kWh. "
           f"Battery: {data['battery_kwh']:.0f} kWh, starts at {data['battery']['soc_start']:.0%}, reserve "
           f"{data['battery']['reserve']:.0%}, ±{data['battery']['max_kw']:.0f} kW, charging efficiency "
           f"{data['battery']['efficiency']}, charged from solar surplus only. All rows are planned by the core's LP "
           "(`plan_interruptible_lp`: solar, battery state of charge slot by slot) with perfect solar and grid forecasts; "
           "the baseline rows give the LP no slack (run at submission).", ""]
    out.append(table(["Planner", "Site", "Grid kWh", "Solar kWh used", "Battery kWh used", "Grid kgCO2eq",
                      "Not placed", "Deadline misses"],
                     [[r["planner"], r["site"], fmt(r["grid_kwh"], 0), fmt(r["solar_kwh"], 0), fmt(r["battery_kwh"], 0),
                       fmt(r["grid_g"] / 1000, 1), r.get("infeasible", 0), r["deadline_misses"]] for r in data["rows"]]))
    by = {(r["planner"].split()[0], r["site"]): r for r in data["rows"]}
    lines = []
    for who in ("baseline", "carbonshift"):
        a, b = by.get((who, "solar")), by.get((who, "solar + battery"))
        if a and b:
            lines.append(f"- {who}: the battery avoids {fmt(a['grid_kwh'] - b['grid_kwh'], 0)} kWh of grid energy "
                         f"({fmt(100 * (1 - b['grid_kwh'] / a['grid_kwh']) if a['grid_kwh'] else 0, 0)}%) and "
                         f"{fmt((a['grid_g'] - b['grid_g']) / 1000, 1)} kgCO2eq "
                         f"({fmt(100 * (1 - b['grid_g'] / a['grid_g']) if a['grid_g'] else 0, 0)}%) against solar without a battery.")
    out += ["", "Battery vs. no battery (same solar):", "", *lines, "",
            "Shifting alone moves work under the midday PV; the battery carries surplus into the evening and night. "
            "The LP is the optimum of the fluid model with perfect forecasts, so these are upper bounds of what the "
            "online operator gets with real PV forecasts.", ""]
    return "\n".join(out)


def operator(data: dict[str, Any] | None) -> str:
    if not data:
        return "## Operator at scale\n\nNot run in this invocation.\n"
    res = data["results"]

    def s(d: dict[str, Any], k: str) -> str:
        return fmt(d.get(k), 2) + " s" if d.get(k) is not None else "—"

    out = ["## Operator at scale (real local control plane, kwok nodes)", "",
           "`bench/operator_scale.py` on its own control plane (`CARBONSHIFT_STATE_DIR=.state/bench "
           "CARBONSHIFT_PORT_OFFSET=300`: etcd, a hub and 3 regional kube-apiservers with controller-manager, scheduler and "
           "kwok nodes). The operator runs as in the tests: `python -m carbonshift run --kubeconfig <hub> "
           "--no-leader-election --metrics-port <port> --cycle-seconds 1`, with the members registered by "
           "`hack/members.py` (capacity raised to 20,000 concurrent jobs). Each CarbonAwareJob may run in 2 of the 3 regions "
           "(rotating), is 10 minutes long with `maxDelay: 1m` (so it runs now) and its kwok pod completes after "
           f"{data['pod_seconds']:g} s. The bench client creates objects with {res[0]['concurrency'] if res else 8} "
           "concurrent HTTP/1.1 connections and follows them with one watch; latencies are on the client's monotonic "
           "clock from the create response to the watch event that shows `status.decision` / `status.memberJob`. "
           "\"Raw\" = the same client creating the same number of plain batch/v1 Jobs (suspended, same pod template) on "
           "the hub just before. \"Bare-client lives\" = the same client doing, per job, the hub writes of a job's life "
           "itself — create, the three status merge patches of a job that runs at once (dispatched, running, succeeded, "
           "shaped like the operator's) and one Event — on a copy of the CarbonAwareJob CRD (same schema and CEL rules, "
           "group `bench.carbonshift.io`, which no operator watches): the cost an ideal operator cannot avoid, without "
           "any member-cluster work. \"paced\" runs create the CarbonAwareJobs at a fixed rate below saturation "
           "(latency with that many jobs in the system, not queueing behind a burst). API requests come from `apiserver_request_total` on the hub and members (resource "
           "requests only, the bench client's own subtracted); \"operator\" counts hub requests plus member `jobs` and "
           "`namespaces` requests; \"all components\" adds the members' controller-manager, scheduler and kwok work "
           "(pods, bindings, Job status). RSS/CPU from `/proc/<pid>` of the operator, sampled every 0.5 s.", ""]
    rows = []
    for r in res:
        rows.append([f"{r['jobs']:,}", r.get("mode", "burst"), f"{r['dispatched']:,}", s(r["create_to_decision_s"], "p50"),
                     s(r["create_to_decision_s"], "p99"), s(r["create_to_dispatch_s"], "p50"),
                     s(r["create_to_dispatch_s"], "p99"),
                     hist_text(r["operator_histogram_s"]), fmt(r["throughput_jobs_per_s"], 1), fmt(r["caj_create_per_s"], 1), fmt(r["raw_jobs_per_s"], 1),
                     f"{r['raw_over_throughput']}×" if r["raw_over_throughput"] else "—",
                     fmt(r.get("floor_lives_per_s"), 1),
                     f"{r['floor_over_throughput']}×" if r.get("floor_over_throughput") else "—",
                     fmt(r["api_requests"]["per_job_operator"], 1), fmt(r["api_requests"]["per_job_all_components"], 1),
                     fmt(r["operator"]["rss_mib_max"], 0), fmt(r["operator"]["cpu_cores_avg"], 2)])
    out.append(table(["CarbonAwareJobs", "Creates", "Dispatched", "Decision p50", "Decision p99", "Dispatch p50", "Dispatch p99",
                      "Operator histogram p99", "Jobs/s sustained", "CAJ creates/s", "Raw Job creates/s",
                      "Raw ÷ sustained", "Bare-client lives/s", "Bare-client ÷ sustained", "API requests/job (operator)", "API requests/job (all)", "Operator RSS max MiB",
                      "Operator CPU (cores)"], rows))
    out += ["", "Targets: decision p99 < 1 s at 5,000 jobs; sustained throughput within 2× of raw API-server writes; "
            "operator RSS < 300 MB.", ""]
    out += [target_lines(res), ""]
    for r in res:
        hub = ", ".join(f"{k} {int(v):,}" for k, v in list(r["api_requests"]["hub_by_verb_resource"].items())[:8])
        out.append(f"- {r['jobs']:,} jobs, {r.get('mode', 'burst')} — hub requests by verb/resource (incl. the bench's creates): {hub}; "
                   f"`decidedAt − creationTimestamp` (1 s resolution) p50/p99: "
                   f"{s(r['decidedAt_minus_creationTimestamp_s'], 'p50')} / {s(r['decidedAt_minus_creationTimestamp_s'], 'p99')}; "
                   f"create → Succeeded p50/p99: {s(r['create_to_succeeded_s'], 'p50')} / {s(r['create_to_succeeded_s'], 'p99')}; "
                   + (f"Events dropped by the operator's bounded queue: {int(r['events_dropped']):,}; "
                      if r.get("events_dropped") is not None else "")
                   + f"regions: {', '.join(f'{k} {v}' for k, v in sorted(r['regions'].items()))}; operator CPU "
                   f"{fmt(r['operator']['cpu_s'], 1)} s over {fmt(r['operator']['wall_s'], 0)} s.")
    out += ["", "![latency distribution](img/operator_latency.png)", "", dominates(res), "", HISTORY]
    return "\n".join(out)


# Earlier runs of the same bench (same machine, commands in this file's history), kept so the
# effect of each change stays visible; the current run is the table above.
HISTORY = """### Earlier runs (same bench, same machine)

| Commit | Operator design | Jobs | Decision p50 / p99 | Jobs/s sustained | Raw Job creates/s | API requests/job (operator) | RSS max MiB |
|---|---|---|---|---|---|---|---|
| `ba57ced` | sync client in 8 threads; cycle waits for all writes; Kopf finalizer | 1,000 | 38.0 s / 56.1 s | 13.0 | 216 | 8.8 | 349 |
| `ba57ced` | 〃 | 5,000 | 249 s / 387 s | 10.2 | 202 | 8.5 | 868 |
| `bbe82d5` | + member Secret cache, waiting decisions first, bounded dispatches, 16 threads | 1,000 | 17.1 s / 26.5 s | 15.6 | 328 | 8.2 | 324 |
| `bbe82d5` | 〃 | 5,000 | 38.4 s / 60.4 s | 13.3 | 196 | 8.1 | 789 |

Then (this run): an aiohttp client instead of the official one (no `kubernetes`, `pandas`,
`prometheus_api_client` or `scipy` imported by the operator: RSS right after start 189 → 79 MiB), each job's
writes as a task beside the cycle, no finalizer (orphan collection), member Jobs by
list-then-watch instead of a LIST per member per cycle, Events from a bounded queue, trimmed
in-memory objects, async Kopf handlers and no per-event diff base.
"""


def rss_line(res: list[dict[str, Any]]) -> str:
    """Operator memory per CarbonAwareJob held, from the RSS after each run (runs share one operator)."""
    ordered = sorted(res, key=lambda x: x["jobs"])
    held, points = 0, []
    for r in ordered:
        held += r["jobs"]
        points.append((held, r["operator"]["rss_mib_end"]))
    per_job = ""
    if len(points) >= 2 and points[-1][0] > points[0][0]:
        kib = 1024 * (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])
        per_job = f" — about {kib:.0f} KiB more per CarbonAwareJob held"
    held_text = ", ".join(f"{mib:.0f} MiB with {n:,} jobs held" for n, mib in points)
    return (f"- Memory: RSS after each run {held_text}{per_job} (one operator serves all runs and keeps every "
            "job it has seen, finished ones trimmed to identity and phase; member Jobs are kept as a few fields "
            "each from a list-then-watch, not listed per cycle).")


def dominates(res: list[dict[str, Any]]) -> str:
    """What bounds the operator, from the measured numbers of the largest run."""
    if not res:
        return ""
    r = max([x for x in res if x.get("mode", "burst") == "burst"] or res, key=lambda x: x["jobs"])
    n = r["jobs"]
    hub = r["api_requests"]["hub_by_verb_resource"]
    lat = r.get("hub_api_mean_ms_by_verb") or {}
    cpu = r.get("plane_cpu_s") or {}
    cycles = r.get("operator_cycles") or {}
    hub_cpu = sum(v for k, v in cpu.items() if k.endswith("@hub") and k.startswith("kube-apiserver"))
    member_cpu = sum(v for k, v in cpu.items() if not k.endswith("@hub") and "@" in k)
    wall = r["operator"]["wall_s"] or 1.0
    writes = sum(v for k, v in hub.items() if k.split()[0] in ("POST", "PATCH", "PUT") and "nodes" not in k
                 and "leases" not in k)
    lines = [f"### What bounds it (from the {n:,}-job run)", "",
             f"- Per CarbonAwareJob the hub took {fmt(writes / n, 2)} writes in this window: the bench's create, "
             f"{fmt(hub.get('PATCH carbonawarejobs/status', 0) / n, 2)} status merge patches (dispatched → running → "
             f"succeeded, each only with the keys that changed), {fmt(hub.get('POST events', 0) / n, 2)} Events (two "
             "per job when the hub keeps up — Dispatched, Succeeded; under a burst the bounded Event queue drops the "
             "rest and counts them in `carbonshift_events_dropped_total`, so status is never held back by them), "
             f"{fmt(hub.get('PATCH carbonawarejobs', 0) / n, 2)} metadata patches; a plain Job is one write. Mean hub "
             f"latency by verb: {', '.join(f'{k} {v:.0f} ms' for k, v in sorted(lat.items()))}.",
             f"- CPU seconds while jobs arrived ({fmt(wall, 0)} s): "
             + ", ".join(f"{k} {v:.0f}" for k, v in list(cpu.items())[:8])
             + f"; the operator {fmt(r['operator']['cpu_s'], 0)}. The hub's kube-apiserver alone used "
             f"{fmt(hub_cpu / wall, 2)} of the 2 cores, the member clusters' components (Jobs, Pods, kwok) "
             f"{fmt(member_cpu / wall, 2)}. The operator is not the bottleneck "
             f"({fmt(r['operator']['cpu_cores_avg'], 2)} cores; {int(cycles.get('cycles', 0))} cycles of "
             f"{fmt(cycles.get('mean_s'), 2)} s on average): the API servers on this shared 2-core machine are.",
             f"- The bare-client figure ({fmt(r.get('floor_lives_per_s'), 1)} lives/s, no member work at all) is the "
             "ceiling for any operator that writes a decision, a dispatch and a result to status on this hub; "
             f"the operator reached {fmt(r['throughput_jobs_per_s'], 1)} jobs/s while the same machine also ran the "
             "members' Jobs and Pods and the bench's own watch.",
             rss_line(res)]
    return "\n".join(lines)


def hist_text(h: dict[str, Any]) -> str:
    """p99 of the operator's histogram; at or beyond its top finite bucket (30 s) it is only a lower bound."""
    top = max((float(k) for k in (h.get("buckets") or {}) if float(k) != float("inf")), default=None)
    value = h.get("p99")
    if value is None:
        return "—"
    if top is not None and value >= top:
        return f"> {top:g} s (top bucket)"
    return f"{value:.2f} s"


def target_lines(res: list[dict[str, Any]]) -> str:
    if not res:
        return ""
    bursts = [r for r in res if r.get("mode", "burst") == "burst"] or res
    big = max(bursts, key=lambda r: r["jobs"])
    p99 = big["create_to_decision_s"]["p99"]
    ratio = big["raw_over_throughput"]
    paced = [r for r in res if r.get("mode", "burst") != "burst" and r["jobs"] == big["jobs"]]
    rss = max(r["operator"]["rss_mib_max"] for r in res) * 1.048576  # MiB -> MB
    floor = big.get("floor_over_throughput")
    lines = [
        f"- Decision p99 at {big['jobs']:,} jobs: {fmt(p99, 2)} s — "
        + ("**met**." if p99 is not None and p99 < 1 else f"**missed** ({fmt(p99 / 1.0 if p99 else 0, 1)}× the 1 s target).")
        + "".join(f" With creates {r['mode']}: p50 {fmt(r['create_to_decision_s']['p50'], 2)} s, p99 "
                  f"{fmt(r['create_to_decision_s']['p99'], 2)} s — "
                  + ("**met**." if (r["create_to_decision_s"]["p99"] or 99) < 1 else "**missed**.") for r in paced),
        f"- Throughput: raw writes are {ratio}× the sustained CarbonAwareJob rate — "
        + ("**met**." if ratio is not None and ratio <= 2 else "**missed** (target ≤ 2×).")
        + (f" Against a bare client doing the same hub writes per job the ratio is {floor}×." if floor else ""),
        f"- Operator RSS max: {rss:.0f} MB — " + ("**met**." if rss < 300 else f"**missed** by {rss - 300:.0f} MB."),
    ]
    return "\n".join(lines)


def scaling(data: dict[str, Any] | None) -> str:
    if not data:
        return "## Planner scaling\n\nNot run in this invocation.\n"
    b = data["base"]
    out = ["## Planner scaling (jobs × regions × slots)", "",
           f"`bench/planner_scaling.py`: `plan_jobs` (least slack first) on synthetic seeded diurnal intensities, "
           f"5-minute slots, jobs of 5 min – 6 h; one dimension varied at a time, the others at {b['jobs']:,} jobs, "
           f"{b['regions']} regions, {b['slots']} slots; median of {data['runs']} runs; capacity limits = 400 concurrent "
           "jobs per region. Slope = exponent of a log-log fit (1 = linear).", ""]
    rows = []
    for c in data["curves"].values():
        if c["axis"] == "product":
            pts = "; ".join(f"{p['jobs']:,}×{p['regions']}×{p['slots']:,}: {p['seconds'] * 1000:,.0f} ms" for p in c["points"])
            label = "all three (slope vs. the product)"
        else:
            pts = "; ".join(f"{p[c['axis']]:,}: {p['seconds'] * 1000:,.0f} ms" for p in c["points"])
            label = c["axis"]
        rows.append([label, "yes" if c["capacity"] else "no", pts, c["slope"]])
    out.append(table(["Varied", "Capacity limits", "Size: time", "Slope"], rows))
    out += ["", "Reading it: time grows linearly with the number of jobs (slope ≈ 1; a little above 1 with capacity "
            "limits, where more jobs mean more re-plans against a fuller ledger) and clearly sub-linearly with regions "
            "and slots, whose search is vectorised; with all three growing together the time grows far slower than "
            "their product. Small sizes are dominated by fixed per-call costs, and the machine is shared, so single "
            "points are noisy.", "", "![planner scaling](img/planner_scaling.png)", ""]
    return "\n".join(out)


def kueue(data: dict[str, Any] | None) -> str:
    head = ["## Kueue: admission latency with and without carbonshift", ""]
    if not data:
        return "\n".join(head + [NOT_RUN, ""])
    rows = [[r["label"], r["jobs"], r["admitted"], fmt(r["p50_s"]), fmt(r["p90_s"]), fmt(r["p99_s"]), fmt(r["max_s"]),
             fmt(r["create_seconds"], 1), fmt(r["total_seconds"], 1)] for r in data["runs"]]
    ratio = data.get("ratio") or {}
    return "\n".join(head + [
        f"{data['jobs']:,} batch/v1 Jobs without a carbon allowance, created in a burst on the hub (8 client threads), "
        "through MultiKueue to three workers (`bench/kueue_latency.py`). Latency: from the Workload's creation "
        "to its Workload's `Admitted` condition (API-server timestamps: whole seconds). *baseline*: Kueue alone (ClusterQueue with the "
        "multikueue check only, Kueue's all-at-once dispatcher). *carbonshift*: the green-window check and carbonshift's "
        "dispatcher (docs/kueue.md), nothing delayed.", "",
        table(["run", "jobs", "admitted", "p50 s", "p90 s", "p99 s", "max s", "create s", "all admitted s"], rows), "",
        f"Ratio carbonshift / baseline: p50 {fmt(ratio.get('p50_s'))}, p99 {fmt(ratio.get('p99_s'))}. carbonshift's "
        "dispatcher nominates one worker where Kueue's all-at-once dispatcher copies each Workload to all three, so a "
        "ratio below 1 does not show that the check is free.", ""])


def planner_speed_latest() -> str:
    path = common.out_dir() / "planner_speed.txt"
    if not path.exists():
        return ""
    return "\n".join(["## Planner speed: latest `make bench` run", "",
                      "Output of `.venv/bin/python bench/planner_speed.py` in this run (the section above is the core's "
                      "own write-up, kept as it is):", "", path.read_text().strip(), ""])


def forecaster(data: dict[str, Any] | None, libs: dict[str, Any] | None,
               rows36: dict[str, Any] | None = None, rows36_builtin: dict[str, Any] | None = None) -> str:
    if not data:
        return "## Built-in forecaster (DACF grids)\n\nNot run in this invocation.\n"
    rows = data["rows"]
    out = ["## Built-in forecaster (DACF grids)", "",
           "Command: `CARBONSHIFT_RESEARCH_DATA=../shared/data .venv/bin/python bench/forecaster.py`. Data: the six "
           "grids of DACF (Maji, Sitaraman, Shenoy, e-Energy '22; `../shared/data/dacf`), 2021-07-01..12-31, hourly "
           "actual intensity next to DACF's day-ahead forecast. Each day from the 29th on is forecast at 00:00 UTC "
           f"from the {data['history_days']} days before it by the built-in forecaster "
           "(`core/forecaster.py`: recency-weighted daily profile plus a deviation whose persistence per hour "
           "ahead is fitted on the same history) and by the weekly profile (`signals/profile.py`, mean per hour of "
           "week, the fallback before it). DACF's forecast is issued the day before from weather forecasts "
           "(it knows less of the recent past and more of the weather). MAPE as the DACF paper computes it: "
           "mean over days of the day's mean |error| / actual.", ""]
    names = ("builtin", "weekly_profile", "dacf")
    out.append(table(["Grid", "Days", "Built-in MAPE", "Weekly profile MAPE", "DACF MAPE",
                      "Built-in pick", "Weekly-profile pick", "DACF pick"],
                     [[r["region"], r["days"], *(pct(r["mape_pct"][n]) for n in names),
                       *(fmt(r["pick_fraction_of_oracle"][n]) for n in names)] for r in rows]))
    mean = {n: sum(r["mape_pct"][n] for r in rows) / len(rows) for n in names}
    picks = {n: [r["pick_fraction_of_oracle"][n] for r in rows if r["pick_fraction_of_oracle"][n] is not None]
             for n in names}
    refit = data["refit"]
    out += ["", f"Mean MAPE over the grids: built-in {pct(mean['builtin'])}, weekly profile "
            f"{pct(mean['weekly_profile'])}, DACF {pct(mean['dacf'])}.", "",
            "*Pick* columns: a 1 h job submitted every third hour may start in any of the next 24 hours; it starts "
            "where the forecast is lowest; the value is the saving on actuals divided by the oracle's (the true "
            "lowest hour), summed over the period. One decision, not the planner; mean: "
            + ", ".join(f"{n.replace('_', ' ')} {fmt(sum(v) / len(v)) if v else '—'}" for n, v in picks.items())
            + ".", "",
            f"Cost: forecasting {refit['horizon_hours']} h for {refit['regions']} regions from "
            f"{refit['history_hours']} hourly values each takes {refit['median_s']:.3f} s (median of the runs, "
            f"max {refit['max_s']:.3f} s) on this shared machine, so the operator refits every cycle.", ""]
    out += _forecaster_planner(rows36, rows36_builtin)
    if libs:
        out += [f"Libraries made for time series against the built-in forecaster, every {libs['stride_days']}th of "
                "those days (24 h ahead at 00:00 UTC from 28 days), in a separate virtualenv: `python3 -m venv "
                "/tmp/fc-eval && /tmp/fc-eval/bin/pip install statsforecast statsmodels && "
                f"FORECASTER_LIBS_STRIDE={libs['stride_days']} /tmp/fc-eval/bin/python bench/forecaster_libs.py` "
                f"(installed: {libs['installed_mb']:.0f} MB of site-packages against {libs['numpy_mb']:.0f} MB for "
                "NumPy alone).", ""]
        out.append(table(["Model", "Mean MAPE", *REGION_ORDER, "Import s", "First fit s", "Median fit s"],
                         [[name, pct(sum(m.values()) / len(m)), *(pct(m.get(r)) for r in REGION_ORDER),
                           fmt(libs["import_s"].get(name.split()[0]), 2), fmt(libs["fit_s"][name]["first"], 3),
                           fmt(libs["fit_s"][name]["median"], 4)] for name, m in libs["mape"].items()]))
        others = {n: f for n, f in libs["fit_s"].items() if not n.startswith("built-in")}
        if others:
            means = {n: sum(m.values()) / len(m) for n, m in libs["mape"].items()}
            ours = next((v for n, v in means.items() if n.startswith("built-in")), None)
            best = min(v for n, v in means.items() if not n.startswith("built-in"))
            accuracy = ("and none is more accurate on these grids on average (the table)" if ours is not None
                        and ours <= best else f"for a mean MAPE of {best:.2f}% against the built-in's {ours}%")
            slowest = max(f["median"] for f in others.values())
            fastest = min(f["median"] for f in others.values())
            out += ["", f"Why the built-in model and no library: one library fit takes {fastest:.2f}–{slowest:.2f} s here, "
                    f"so refitting 100 regions takes {100 * fastest:.0f}–{100 * slowest:.0f} s instead of well under one; "
                    f"the packages are {libs['installed_mb']:.0f} MB against an operator image of 214 MB; {accuracy}. "
                    "The operator's runtime needs only NumPy."]
        out.append("")
    return "\n".join(out)


REGION_ORDER = ("CISO", "PJM", "ERCO", "ISNE", "SE", "DE")


def _forecaster_planner(data: dict[str, Any] | None, alone: dict[str, Any] | None) -> list[str]:
    """The built-in forecaster's line of the 36-row harness (bench/forecast_rows.py), next to DACF and week-mean:
    from the full run when it has the builtin rows, else from a run of just these three sources
    (``bench/forecast_rows.py --configs whole-window/builtin/none,whole-window/dacf/none,whole-window/week-mean/none
    --out forecast_rows_builtin``)."""
    sources = ("builtin", "dacf", "week-mean")

    def pick(d: dict[str, Any] | None) -> list[dict[str, Any]]:
        return [r for r in (d or {}).get("rows", []) if r["mode"] == "whole-window" and r["policy"] == "none"
                and r["source"] in sources]
    rows = pick(data)
    command = "`CARBONSHIFT_RESEARCH_DATA=../shared/data .venv/bin/python bench/forecast_rows.py`"
    if not any(r["source"] == "builtin" for r in rows):
        rows = pick(alone)
        command = ("`CARBONSHIFT_RESEARCH_DATA=../shared/data .venv/bin/python bench/forecast_rows.py --configs "
                   "whole-window/builtin/none,whole-window/dacf/none,whole-window/week-mean/none --out "
                   "forecast_rows_builtin`")
    if not any(r["source"] == "builtin" for r in rows):
        return ["Savings the planner gets with it: not in this invocation's `bench/forecast_rows.py` results.", ""]
    lines = []
    for source in sources:
        got = [r["fraction_of_oracle"] for r in rows if r["source"] == source and r["fraction_of_oracle"] is not None]
        if got:
            worst = min((r for r in rows if r["source"] == source and r["fraction_of_oracle"] is not None),
                        key=lambda r: r["fraction_of_oracle"])
            lines.append(f"{source} {sum(got) / len(got):.3f} over {len(got)} rows (lowest {worst['fraction_of_oracle']:.2f}, "
                         f"{worst['grid']} {worst['scenario']})")
    return [f"Savings the planner gets with it, from the 36-row harness ({command}, whole-window mode, as in the "
            "section \"Savings under real forecasts\"), mean fraction of the oracle's saving: " + "; ".join(lines)
            + ". The built-in forecaster sees only the grid's past; DACF's column is used as-is however far ahead.", ""]


def solar_forecast(data: dict[str, Any] | None) -> str:
    if not data:
        return "## On-site solar forecast\n\nNot run in this invocation.\n"
    modes = data["modes"]
    out = ["## On-site solar forecast", "",
           "Command: `.venv/bin/python bench/solar_forecast.py`. Sites: the ten cities of "
           f"{VESSIM_CITE.split(' — ')[0].replace(' (Berlin)', '')} (timestamps are UTC: the daily peaks fall on each "
           f"city's solar noon), scaled to {data['pv_peak_kw']:.0f} kW peak, hourly, {data['days']} days from "
           f"2022-06-11 (the three days before are history). The grid is a constant {data['grid_g_per_kwh']:.0f} g/kWh, "
           f"so solar is the only reason to move a job. {data['jobs']} jobs of {data['job_kw']:.0f} kW (PUE "
           f"{data['pue']}), 1–4 h, non-interruptible, four a day at random hours, each due 24 h after submission, "
           "planned once at submission by the core planner (`plan_job`) on the solar forecast issued then (net of "
           "the jobs planned before it), scored on the actual PV (solar used in an hour = min(demand, PV)). "
           "*hold 1 h*: the operator's rule for a site without a location (the current output for one hour, then "
           "none); *clear-sky*: `core/solar.py` (a clear-sky curve for the city's latitude and longitude, scaled by "
           "the last hour's and last three days' output), used when `spec.energy.latitude`/`longitude` are set; "
           "*perfect*: the actual PV, the bound for this planner. Cells: share of the jobs' energy from solar.", ""]
    out.append(table(["City", *modes], [[r["city"], *(pct(r[m]["green_pct"]) for m in modes)] for r in data["rows"]]))
    mean = {m: sum(r[m]["green_pct"] for r in data["rows"]) / len(data["rows"]) for m in modes}
    solar = {m: sum(r[m]["solar_kwh"] for r in data["rows"]) for m in modes}
    out += ["", "Mean over the sites: " + ", ".join(f"{m} {pct(mean[m])}" for m in modes) + "; solar energy used: "
            + ", ".join(f"{m} {fmt(solar[m], 0)} kWh" for m in modes) + ". On a flat grid the hold rule never sees "
            "solar beyond the next hour, so it plans exactly as running at submission; on a real grid it can "
            "still catch the sun by accident when the grid's cheapest hour is a sunny one. The operator re-plans "
            "every cycle, which this one-shot plan does not. The clear-sky column is the horizontal model: the "
            "traces do not document their panels' tilt or azimuth, so `spec.energy.panelTiltDegrees`/"
            "`panelAzimuthDegrees` (a geometric plane-of-array model, docs/signals.md) are not measured here.", ""]
    return "\n".join(out)


def render(previous: Path) -> str:
    m = common.read_result("machine") or common.machine()
    quick = any((common.read_result(n) or {}).get("quick") for n in ("carbon_temporal", "carbon_spatial", "carbon_onsite",
                                                                      "planner_scaling"))
    parts = ["# Benchmarks", "",
             "Generated by `make bench` (= `bash hack/bench.sh`), which runs every benchmark and rewrites this file "
             "(except the \"Planner speed\" and \"Forecast policy experiments\" sections, kept verbatim; a section whose benchmark did not run in this "
             "invocation keeps its previous text, with the numbers of that earlier run). "
             + ("**This is a BENCH_QUICK=1 run: small sizes, not the reference numbers.** " if quick else "")
             + f"Generated {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}.", "",
             "## Machine and commands", "",
             f"- Machine: {m['cpu_model']}, {m['nproc']} cores (`nproc`), {m['memory_gib']} GiB RAM, {m['machine']}, "
             f"Python {m['python']}, NumPy {m['numpy']}; load average at start {m['loadavg']} — the machine is shared "
             "with other work, so times are noisy.",
             "- Everything: `make bench` (`BENCH_QUICK=1 make bench` for a small version in a few minutes; "
             "`BENCH_SKIP_OPERATOR=1` skips the control-plane part).",
             "- Parts (from the repository root; each writes JSON to `.state/bench-results/`):",
             "  - `.venv/bin/python bench/carbon_temporal.py` — temporal shifting, Let's Wait Awhile data",
             "  - `.venv/bin/python bench/carbon_spatial.py` — spatial + temporal with capacity limits",
             "  - `.venv/bin/python bench/carbon_onsite.py` — on-site solar and battery",
             "  - `CARBONSHIFT_STATE_DIR=$PWD/.state/bench CARBONSHIFT_PORT_OFFSET=300 .venv/bin/python "
             "bench/operator_scale.py --sizes 1000,5000 --paced-sizes 5000 --paced-rate 10` — the operator on the local control plane "
             "(then `CARBONSHIFT_STATE_DIR=$PWD/.state/bench CARBONSHIFT_PORT_OFFSET=300 hack/cluster down`)",
             "  - `.venv/bin/python bench/planner_scaling.py` — planner scaling",
             "  - `.venv/bin/python bench/kueue_latency.py --jobs 1000` — Kueue with and without carbonshift "
             "(on a plane started with `hack/cluster up --kueue`, same state folder and offset as above)",
             "  - `.venv/bin/python bench/planner_speed.py` — planner speed (the core's benchmark)",
             "  - `CARBONSHIFT_RESEARCH_DATA=../shared/data .venv/bin/python bench/forecaster.py` — built-in forecaster",
             "  - `CARBONSHIFT_RESEARCH_DATA=../shared/data .venv/bin/python bench/planner_bound.py` — greedy planner vs. "
             "a lower bound under capacity limits",
             "  - `.venv/bin/python bench/solar_forecast.py` — on-site solar forecast",
             "  - `CARBONSHIFT_RESEARCH_DATA=../shared/data .venv/bin/python bench/forecast_rows.py` — savings under real "
             "forecasts (DACF grids, whole-window and online)",
             "  - `CARBONSHIFT_RESEARCH_DATA=../shared/data .venv/bin/python bench/peers.py` — peers' rules on the same jobs",
             "  - `.venv/bin/python bench/report.py` — this file", "",
             temporal(common.read_result("carbon_temporal")),
             spatial(common.read_result("carbon_spatial")),
             planner_bound(common.read_result("planner_bound")),
             onsite(common.read_result("carbon_onsite")),
             operator(common.read_result("operator_scale")),
             scaling(common.read_result("planner_scaling")),
             forecaster(common.read_result("forecaster"), common.read_result("forecaster_libs"),
                        common.read_result("forecast_rows"), common.read_result("forecast_rows_builtin")),
             solar_forecast(common.read_result("solar_forecast")),
             forecast_rows.report_section(common.read_result("forecast_rows")),
             f"{EXPERIMENTS_HEADING}\n\n{NOT_RUN}",
             peers.report_section(common.read_result("peers")),
             kueue(common.read_result("kueue_latency"))]
    old = previous.read_text() if previous.exists() else ""
    parts = [keep_previous(part, old) for part in parts]
    speed = planner_speed_section(previous)
    if speed:
        parts.append(speed.rstrip() + "\n")
    latest = planner_speed_latest() or keep_previous(f"{PLANNER_SPEED_HEADING}: latest\n\n{NOT_RUN}", old)
    if NOT_RUN not in latest:
        parts.append(latest)
    return "\n".join(parts).rstrip() + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--output", type=Path, default=DOC)
    parser.add_argument("--previous", type=Path, default=DOC, help="file whose 'Planner speed' section is kept")
    args = parser.parse_args()
    text = render(args.previous)
    args.output.write_text(text)
    print(f"wrote {args.output} ({len(text):,} characters)")


if __name__ == "__main__":
    main()
