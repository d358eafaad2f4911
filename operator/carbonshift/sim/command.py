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
    parser.add_argument("--no-bound", action="store_true",
                        help="skip bound_g, the lower bound on any placement's emissions (with --capacity it takes "
                             "tens of seconds)")
    parser.add_argument("--safety-margin", type=float, default=0.0, metavar="FRACTION",
                        help="latest end = deadline - FRACTION x duration (default 0)")
    parser.add_argument("--timezone", help="nightly: local time zone (default: from region name, else UTC)")
    parser.add_argument("--em-column", choices=["lca", "direct"], default="lca", help="Electricity Maps column")
    parser.add_argument("--forecast", metavar="SOURCE|PATH[:COLUMN]",
                        help="plan on a forecast issued in time, scored on actuals: actual, dacf (the trace file's "
                             "day-ahead column), persistence, yesterday, week-mean, builtin, noise:<pct>, or a CSV "
                             "column (day-ahead: known through the next UTC day once published at 12:00 UTC)")
    parser.add_argument("--whole-window", action="store_true",
                        help="with --forecast: plan each job once at submission on a forecast covering its whole "
                             "window (the papers' setting) instead of replaying the operator's cycle")
    parser.add_argument("--horizon-hours", type=float, default=48.0,
                        help="with --forecast: how far history-based forecasts reach (the operator's horizonHours)")
    parser.add_argument("--replan-min-improvement", type=float, default=0.05,
                        help="with --forecast: the operator's hysteresis (default 0.05)")
    parser.add_argument("--forecast-policy", choices=["none", "learned"], default="learned",
                        help="with --forecast: learned = bias and error by lead learned from the signal's history, "
                             "uncertainty premium on waiting, beyond-horizon value (default); none = the raw forecast")


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
    if args.forecast:
        return _run_forecast(args)
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
        result = engine.run(trace, _workload(args, home), _scenario(args, regions if args.spatial else (home,), home),
                            bound=not args.no_bound)
        print(json.dumps({**result, "config": config}))
        return 0
    by_region = {r: engine.run(trace, _workload(args, r), _scenario(args, (r,), r), bound=not args.no_bound)
                 for r in regions}
    keys = ("jobs", "unplaced_jobs", "oracle_unplaced_jobs", "baseline_g", "planned_g", "oracle_g", "deadline_misses")
    total: dict[str, object] = {k: sum(v[k] for v in by_region.values()) for k in keys}  # type: ignore[misc]
    bounds = [v["bound_g"] for v in by_region.values()]
    total["bound_g"] = None if None in bounds else sum(bounds)  # type: ignore[arg-type]
    total.update(engine.savings_fields(total["baseline_g"], total["planned_g"], total["oracle_g"], total["bound_g"]))  # type: ignore[arg-type]
    total["infeasible"] = total["unplaced_jobs"]
    print(json.dumps({**total, "by_region": by_region, "config": config}))
    return 0


def _run_forecast(args: argparse.Namespace) -> int:
    """``--forecast``: one region, planned on a forecast issued in time (``sim.online``)."""
    from carbonshift.sim import forecasts, online

    specs = args.trace or ["de=DE"]
    if len(specs) != 1 or args.spatial:
        print(json.dumps({"error": "--forecast takes one --trace and no --spatial"}), file=sys.stderr)
        return 2
    region, sep, path = specs[0].partition("=")
    if not sep:
        region, path = "", specs[0]
    try:
        trace, dacf = forecasts.load_trace_and_forecast(path, region or None, args.em_column,
                                                        pd.Timedelta(minutes=30))
        region = trace.regions[0]
        grid = forecasts.Grid(trace.frame[region].to_numpy(dtype=float), trace.frame.index[0].timestamp(),
                              int(trace.step.total_seconds()))
        horizon = None if args.whole_window else int(round(args.horizon_hours * 3600 / grid.step_seconds))
        if args.forecast == "dacf":
            if dacf is None:
                raise ValueError(f"{path}: no day-ahead column {forecasts.DACF_COLUMN!r}")
            source = forecasts.day_ahead_source(grid, dacf, whole_window=args.whole_window)
        else:
            source = forecasts.make_source(args.forecast, grid, trace_path=path, step=trace.step,
                                           index=trace.frame.index, horizon_slots=horizon, seed=args.seed,
                                           whole_window=args.whole_window)
    except (OSError, ValueError, SignalError) as exc:
        print(json.dumps({"error": str(exc)}), file=sys.stderr)
        return 2
    if args.year is None:
        args.year = trace.frame.index[len(trace.frame) // 2].year
    setup = online.Setup(region=region, interruptible=args.interruptible,
                         options=PlannerOptions(safety_margin_fraction=args.safety_margin),
                         replan_min_improvement=args.replan_min_improvement)
    conditioner = None
    if args.forecast_policy == "learned":
        from carbonshift.sim.policy import learned_conditioner
        conditioner = learned_conditioner(source)
    runner = online.whole_window if args.whole_window else online.online
    result = runner(trace, _workload(args, region), setup, source, conditioner)
    config = {"workload": args.workload, "regions": [region], "home": region, "interruptible": args.interruptible,
              "forecast": args.forecast, "mode": "whole-window" if args.whole_window else "online",
              "horizon_hours": None if args.whole_window else args.horizon_hours,
              "forecast_policy": args.forecast_policy, "replan_min_improvement": args.replan_min_improvement,
              "window_h": args.window if args.workload == "nightly" else None,
              "slot_minutes": trace.step.total_seconds() / 60}
    print(json.dumps({**result, "config": config}))
    return 0
