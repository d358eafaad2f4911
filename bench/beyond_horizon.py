"""Rules for the slots past the forecast's horizon, on the ML rows of forecast_rows (issue #16).

Why this script exists: the learned policy values slots past the horizon by ``core.stopping``;
its parameters are chosen on Sep-Oct 2021 of DE and SE only (jobs submitted from Sep 1, the trace
from Aug 1 so four weeks of history exist) and every other grid and month is out of sample.
Each variant is ``name:slack:premium:days`` (``slack`` 1: ``fill_beyond_horizon(slack_aware=True)``
with the continuation values of ``days`` days of history; 0: the flat 7-day profile rule), run
online on DACF with the learned policy, as forecast_rows' ``online/dacf/learned``.
Run: ``CARBONSHIFT_RESEARCH_DATA=../shared/data .venv/bin/python bench/beyond_horizon.py
--grids DE,SE --scenarios ml,ml-int --variants flat:0:-0.5:7,stop:1:0.5:7 [--window 2021-08-01,2021-09-01,2021-11-01]``
(window: trace start, first submission scored, trace end; default: the whole trace). Writes
``beyond_horizon.json``.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any

import common
import forecast_rows

from carbonshift.sim import online
from carbonshift.sim.policy import LearnedConditioner
from carbonshift.sim.traces import Trace


def run(grids: list[str], scenarios: list[str], variants: list[str], window: list[datetime] | None) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for region in grids:
        trace, dacf = forecast_rows.load(region)
        score_from = None
        if window:
            lo, score_from, hi = window
            keep = (trace.frame.index >= lo) & (trace.frame.index < hi)
            trace, dacf = Trace(trace.frame[keep]), dacf[keep]
        for scenario in scenarios:
            jobs, interruptible = forecast_rows.jobs_for(scenario, trace, forecast_rows.GRIDS[region])
            if score_from is not None:
                jobs = [j for j in jobs if j.submit_at >= score_from]
            setup = online.Setup(region=region, interruptible=interruptible)
            for variant in variants:
                name, slack, premium, days = variant.split(":")
                source = forecast_rows.make_source("dacf", trace, region, dacf, "online")
                conditioner = LearnedConditioner(source, beyond_premium=float(premium), slack_aware=slack == "1",
                                                 chance_days=int(days))
                result = online.online(trace, jobs, setup, source, conditioner)
                row = {"grid": region, "scenario": scenario, "variant": name, "fraction": result["fraction_of_oracle"],
                       "savings_pct": result["savings_pct"], "oracle_savings_pct": result["oracle_savings_pct"],
                       "misses": result["deadline_misses"]}
                rows.append(row)
                print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grids", default=",".join(forecast_rows.GRIDS))
    parser.add_argument("--scenarios", default="ml,ml-int")
    parser.add_argument("--variants", default="flat:0:-0.5:7,stop:1:0.5:7")
    parser.add_argument("--window", default="")
    args = parser.parse_args()
    window = [datetime.fromisoformat(x).replace(tzinfo=timezone.utc) for x in args.window.split(",")] if args.window else None
    rows = run(args.grids.split(","), args.scenarios.split(","), args.variants.split(","), window)
    common.write_result("beyond_horizon", {"rows": rows, "window": args.window, "variants": args.variants})


if __name__ == "__main__":
    main()
