"""``carbonshift simulate``: replay carbon-intensity traces and print savings as one JSON object.

Why this module exists: the CLI dispatcher (``carbonshift.cli``) loads this module lazily and
calls ``add_arguments`` and ``run``; everything else lives in the ``sim`` engine.

Two modes. The default replays what the operator does (``sim.online``): every 30-minute cycle
each waiting job is re-planned on the forecast issued then, reaching ``--horizon-hours`` (the
operator's ``horizonHours``, 48 h) or a recorded forecast's real publication horizon, with the
operator's hysteresis; without ``--forecast`` the forecast is the built-in forecaster run on the
trace's own history (what the operator uses for a provider that gives no forecast), conditioned
by the learned policy. ``--whole-window`` plans each job once at submission on a forecast that
covers its whole window: the papers' setting (Let's Wait Awhile's Gaussian noise with
``--forecast-error``, spatial shifting and capacity limits), kept for comparison with them.
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
    parser.add_argument("--whole-window", action="store_true",
                        help="plan each job once at submission on a forecast covering its whole window (the papers' "
                             "setting, for comparison with them) instead of replaying the operator's cycle (the "
                             "default); needed by --forecast-error, --forecast-smoothing, --repetitions, --spatial "
                             "and --capacity")
    parser.add_argument("--forecast-error", type=float, default=0.0, metavar="FRACTION",
                        help="--whole-window without --forecast: forecast = actual + Gaussian noise, std = FRACTION x "
                             "mean intensity (default 0: the actual series)")
    parser.add_argument("--forecast-smoothing", type=int, default=0, metavar="SLOTS",
                        help="--whole-window: denoise the forecast with a centred moving average over SLOTS slots "
                             "(default off)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the forecast noise")
    parser.add_argument("--repetitions", type=int, default=1,
                        help="--whole-window: noise seeds seed..seed+N-1, averaged")
    parser.add_argument("--workload-seed", type=int, default=0)
    parser.add_argument("--year", type=int, default=None, help="year of the workload (default: the trace's)")
    parser.add_argument("--deadline-rule", choices=["paper", "workday"], default="paper",
                        help="ml: next-working-day rule (paper: as the paper's code; workday: Fri evening -> Mon)")
    parser.add_argument("--spatial", action="store_true",
                        help="--whole-window: jobs may run in any trace's region")
    parser.add_argument("--home", help="home region (default: the first trace)")
    parser.add_argument("--capacity", action="append", default=[], metavar="REGION=N",
                        help="--whole-window: max concurrent jobs in a region (spatial mode)")
    parser.add_argument("--no-bound", action="store_true",
                        help="skip bound_g, the lower bound on any placement's emissions (with --capacity it takes "
                             "tens of seconds)")
    parser.add_argument("--safety-margin", type=float, default=0.0, metavar="FRACTION",
                        help="latest end = deadline - FRACTION x duration (default 0)")
    parser.add_argument("--timezone", help="nightly: local time zone (default: from region name, else UTC)")
    parser.add_argument("--em-column", choices=["lca", "direct"], default="lca", help="Electricity Maps column")
    parser.add_argument("--forecast", metavar="SOURCE|PATH[:COLUMN]",
                        help="plan on a forecast issued in time, scored on actuals: builtin (the default: the built-in "
                             "forecaster on the trace's own history, as the operator uses for a provider without "
                             "forecast), actual, dacf (the trace file's day-ahead column), persistence, yesterday, "
                             "week-mean, noise:<pct>, or a CSV column (day-ahead: known through the next UTC day once "
                             "published at 12:00 UTC); with --whole-window and no --forecast: the actual series plus "
                             "--forecast-error noise")
    parser.add_argument("--horizon-hours", type=float, default=48.0,
                        help="how far history-based forecasts reach (the operator's horizonHours, default 48)")
    parser.add_argument("--replan-min-improvement", type=float, default=0.05,
                        help="the operator's hysteresis: a decision changes only if the new plan emits this "
                             "fraction less (default 0.05)")
    parser.add_argument("--forecast-policy", choices=["none", "learned"], default="learned",
                        help="learned = bias and error by lead learned from the signal's history, blended with the "
                             "built-in forecaster, uncertainty premium on moving, beyond-horizon value (default); "
                             "none = the raw forecast (with --forecast, or --whole-window)")


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


# options of the whole-window engine (the papers' setting) that the operator's cycle has no use for
_WHOLE_WINDOW_ONLY: tuple[tuple[str, object, str], ...] = (("forecast_error", 0.0, "--forecast-error"), ("forecast_smoothing", 0, "--forecast-smoothing"),
                      ("repetitions", 1, "--repetitions"), ("spatial", False, "--spatial"), ("capacity", [], "--capacity"))


def run(args: argparse.Namespace) -> int:
    if not args.whole_window:
        used = [flag for attr, default, flag in _WHOLE_WINDOW_ONLY if getattr(args, attr) != default]
        if used:
            print(json.dumps({"error": f"{', '.join(used)}: the papers' whole-window setting; add --whole-window "
                                       "(the default replays the operator's cycle)"}), file=sys.stderr)
            return 2
        return _run_forecast(args)
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
              "mode": "whole-window", "forecast": None,
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
    """The operator's cycle (default) or ``--whole-window --forecast``, one region at a time (``sim.online``)."""
    from carbonshift.sim import forecasts, online

    name = args.forecast or "builtin"
    specs = args.trace or ["de=DE"]
    if args.spatial:
        print(json.dumps({"error": "--forecast takes no --spatial"}), file=sys.stderr)
        return 2
    try:
        if len(specs) == 1:
            region, sep, path = specs[0].partition("=")
            if not sep:
                region, path = "", specs[0]
            trace, dacf = forecasts.load_trace_and_forecast(path, region or None, args.em_column,
                                                            pd.Timedelta(minutes=30))
        else:
            path, dacf = "", None
            trace = traces.load(specs, em_column=args.em_column, max_step=pd.Timedelta(minutes=30))
        if name == "dacf" and (dacf is None or len(specs) != 1):
            raise ValueError(f"{path or 'several traces'}: no day-ahead column {forecasts.DACF_COLUMN!r}")
        horizon = None if args.whole_window else int(round(args.horizon_hours * 3600 / trace.step.total_seconds()))
        sources = {}
        for region in trace.regions:
            grid = forecasts.Grid(trace.frame[region].to_numpy(dtype=float), trace.frame.index[0].timestamp(),
                                  int(trace.step.total_seconds()))
            if name == "dacf":
                sources[region] = forecasts.day_ahead_source(grid, dacf, whole_window=args.whole_window)  # type: ignore[arg-type]
            else:
                sources[region] = forecasts.make_source(name, grid, trace_path=path or None, step=trace.step,
                                                        index=trace.frame.index, horizon_slots=horizon, seed=args.seed,
                                                        whole_window=args.whole_window)
    except (OSError, ValueError, SignalError) as exc:
        print(json.dumps({"error": str(exc)}), file=sys.stderr)
        return 2
    if args.year is None:
        args.year = trace.frame.index[len(trace.frame) // 2].year
    runner = online.whole_window if args.whole_window else online.online
    by_region: dict[str, dict[str, object]] = {}
    for region, source in sources.items():
        setup = online.Setup(region=region, interruptible=args.interruptible,
                             options=PlannerOptions(safety_margin_fraction=args.safety_margin),
                             replan_min_improvement=args.replan_min_improvement, bound=not args.no_bound)
        conditioner = None
        if args.forecast_policy == "learned":
            from carbonshift.sim.policy import learned_conditioner
            conditioner = learned_conditioner(source)
        by_region[region] = runner(trace, _workload(args, region), setup, source, conditioner)
    regions = list(by_region)
    config = {"workload": args.workload, "regions": regions, "home": regions[0], "interruptible": args.interruptible,
              "forecast": name, "mode": "whole-window" if args.whole_window else "online",
              "horizon_hours": None if args.whole_window else args.horizon_hours,
              "forecast_policy": args.forecast_policy, "replan_min_improvement": args.replan_min_improvement,
              "window_h": args.window if args.workload == "nightly" else None,
              "deadline_rule": args.deadline_rule if args.workload == "ml" else None,
              "slot_minutes": trace.step.total_seconds() / 60, "safety_margin": args.safety_margin}
    if len(by_region) == 1:
        print(json.dumps({**by_region[regions[0]], "config": config}))
        return 0
    keys = ("jobs", "unplaced_jobs", "baseline_g", "planned_g", "oracle_g", "deadline_misses")
    total: dict[str, object] = {k: sum(v[k] for v in by_region.values()) for k in keys}  # type: ignore[misc]
    bounds = [v["bound_g"] for v in by_region.values()]
    total["bound_g"] = None if None in bounds else sum(bounds)  # type: ignore[arg-type]
    total.update(engine.savings_fields(total["baseline_g"], total["planned_g"], total["oracle_g"], total["bound_g"]))  # type: ignore[arg-type]
    total["infeasible"] = total["unplaced_jobs"]
    print(json.dumps({**total, "by_region": by_region, "config": config}))
    return 0
