"""``carbonshift simulate``: replay carbon-intensity traces and print savings as one JSON object.

Why this module exists: the CLI dispatcher (``carbonshift.cli``) loads this module lazily and
calls ``add_arguments`` and ``run``; everything else lives in the ``sim`` engine.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta, timezone

import pandas as pd

from carbonshift.core import PlannerOptions
from carbonshift.sim import engine, traces, workloads
from carbonshift.signals import SignalError

_TIMEZONES = {"ger": "Europe/Berlin", "de": "Europe/Berlin", "gb": "Europe/London", "fr": "Europe/Paris"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trace", action="append", default=[], metavar="[REGION=]PATH",
                        help="intensity CSV or bundled trace name such as DE (repeatable); default: de=DE, "
                             "Germany 2022 from Electricity Maps, shipped with carbonshift")
    parser.add_argument("--workload", choices=["nightly", "ml"], default="ml")
    parser.add_argument("--window", type=float, default=8.0, metavar="HOURS",
                        help="nightly: flexibility either side of 01:00 (default 8)")
    parser.add_argument("--interruptible", action="store_true")
    parser.add_argument("--forecast-error", type=float, default=0.0, metavar="FRACTION",
                        help="forecast noise: std = FRACTION x mean intensity (default 0)")
    parser.add_argument("--forecast-smoothing", type=int, default=0, metavar="SLOTS",
                        help="denoise the forecast with a centred moving average over SLOTS slots (default off)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the forecast noise")
    parser.add_argument("--repetitions", type=int, default=1, help="noise seeds seed..seed+N-1, averaged")
    parser.add_argument("--workload-seed", type=int, default=0)
    parser.add_argument("--year", type=int, default=None, help="year of the workload (default: the trace's)")
    parser.add_argument("--deadline-rule", choices=["paper", "workday"], default="paper",
                        help="ml: next-working-day rule (paper: as the paper's code; workday: Fri evening -> Mon)")
    parser.add_argument("--spatial", action="store_true", help="jobs may run in any trace's region")
    parser.add_argument("--home", help="home region (default: the first trace)")
    parser.add_argument("--capacity", action="append", default=[], metavar="REGION=N",
                        help="max concurrent jobs in a region (spatial mode)")
    parser.add_argument("--safety-margin", type=float, default=0.0, metavar="FRACTION",
                        help="latest end = deadline - FRACTION x duration (default 0)")
    parser.add_argument("--timezone", help="nightly: local time zone (default: from region name, else UTC)")
    parser.add_argument("--em-column", choices=["lca", "direct"], default="lca", help="Electricity Maps column")


def _scenario(args: argparse.Namespace, regions: tuple[str, ...], home: str) -> engine.Scenario:
    capacity = {}
    for spec in args.capacity:
        region, _, n = spec.partition("=")
        capacity[region] = int(n)
    return engine.Scenario(
        regions=regions, home=home, interruptible=args.interruptible, forecast_error=args.forecast_error,
        seed=args.seed, repetitions=args.repetitions, capacity=capacity,
        options=PlannerOptions(safety_margin_fraction=args.safety_margin),
        forecast_smoothing_slots=args.forecast_smoothing,
    )


def _workload(args: argparse.Namespace, region: str) -> list[workloads.SimJob]:
    if args.workload == "ml":
        return workloads.ml(year=args.year, seed=args.workload_seed, rule=args.deadline_rule)
    tz = args.timezone or _TIMEZONES.get(region.lower(), "UTC")
    start = datetime(args.year, 1, 1, tzinfo=timezone.utc)
    return workloads.nightly(start - timedelta(days=1), datetime(args.year + 1, 1, 1, tzinfo=timezone.utc) + timedelta(hours=args.window), args.window, tz)


def run(args: argparse.Namespace) -> int:
    specs = args.trace or ["de=DE"]
    try:
        # Jobs are submitted on the half hour: an hourly trace (the bundled ones) is held over
        # 30-minute slots, so a job is not pushed to the next hour and a tight deadline stays feasible.
        trace = traces.load(specs, em_column=args.em_column, max_step=pd.Timedelta(minutes=30))
    except (OSError, ValueError, SignalError) as exc:
        print(json.dumps({"error": str(exc)}), file=sys.stderr)
        return 2
    if args.year is None:
        args.year = trace.frame.index[len(trace.frame) // 2].year
    regions = trace.regions
    home = args.home or regions[0]
    if home not in regions:
        print(json.dumps({"error": f"home region {home} not among {list(regions)}"}), file=sys.stderr)
        return 2
    config = {"workload": args.workload, "regions": list(regions), "home": home, "spatial": args.spatial,
              "interruptible": args.interruptible, "forecast_error": args.forecast_error, "seed": args.seed, "repetitions": args.repetitions, "forecast_smoothing": args.forecast_smoothing,
              "window_h": args.window if args.workload == "nightly" else None,
              "deadline_rule": args.deadline_rule if args.workload == "ml" else None,
              "slot_minutes": trace.step.total_seconds() / 60, "safety_margin": args.safety_margin}
    if args.spatial or len(regions) == 1:
        result = engine.run(trace, _workload(args, home), _scenario(args, regions if args.spatial else (home,), home))
        print(json.dumps({**result, "config": config}))
        return 0
    by_region = {r: engine.run(trace, _workload(args, r), _scenario(args, (r,), r)) for r in regions}
    keys = ("jobs", "unplaced_jobs", "oracle_unplaced_jobs", "baseline_g", "planned_g", "oracle_g", "bound_g", "deadline_misses")
    total: dict[str, object] = {k: sum(v[k] for v in by_region.values()) for k in keys}  # type: ignore[misc]
    total.update(engine.savings_fields(total["baseline_g"], total["planned_g"], total["oracle_g"], total["bound_g"]))  # type: ignore[arg-type]
    total["infeasible"] = total["unplaced_jobs"]
    print(json.dumps({**total, "by_region": by_region, "config": config}))
    return 0
