"""The premium on moving, priced on the extra spread or on the gain's own spread, in sample (issue #16).

Why this script exists: ``core.uncertainty.relative_spread`` (simulator policy ``learned-relative``)
was measured against the learned policy's extra-spread premium with parameters chosen on
Sep-Oct 2021 of DE and SE only: jobs submitted in those months, scored online on the whole trace
(the policy learns only from what was measured before each issue). Each variant is
``rule:premium`` (``extra``: the learned policy's rule; ``gain``: the gain's spread).
Run: ``CARBONSHIFT_RESEARCH_DATA=../shared/data .venv/bin/python bench/gain_premium.py
--grids DE,SE --scenarios ml,nightly-2,nightly-4,nightly-8,hourly-24 --sources dacf,builtin
--variants extra:0.5,gain:0.25,gain:0.5``. Writes ``gain_premium.json``.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from typing import Any

import common
import forecast_rows

from carbonshift.sim import online
from carbonshift.sim.policy import LearnedConditioner

IN_SAMPLE = (datetime(2021, 9, 1, tzinfo=timezone.utc), datetime(2021, 11, 1, tzinfo=timezone.utc))


def run(grids: list[str], scenarios: list[str], sources: list[str], variants: list[str]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    lo, hi = IN_SAMPLE
    for region in grids:
        trace, dacf = forecast_rows.load(region)
        for scenario in scenarios:
            jobs, interruptible = forecast_rows.jobs_for(scenario, trace, forecast_rows.GRIDS[region])
            jobs = [j for j in jobs if lo <= j.submit_at < hi]
            setup = online.Setup(region=region, interruptible=interruptible)
            for name in sources:
                for variant in variants:
                    rule, premium = variant.split(":")
                    source = forecast_rows.make_source(name, trace, region, dacf, "online")
                    conditioner = LearnedConditioner(source, premium=float(premium), relative=rule == "gain")
                    result = online.online(trace, jobs, setup, source, conditioner)
                    row = {"grid": region, "scenario": scenario, "source": name, "variant": variant,
                           "fraction": result["fraction_of_oracle"], "misses": result["deadline_misses"]}
                    rows.append(row)
                    print(row, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--grids", default="DE,SE")
    parser.add_argument("--scenarios", default="ml,nightly-2,nightly-4,nightly-8,hourly-24")
    parser.add_argument("--sources", default="dacf,builtin")
    parser.add_argument("--variants", default="extra:0.5,gain:0.25,gain:0.5")
    args = parser.parse_args()
    rows = run(args.grids.split(","), args.scenarios.split(","), args.sources.split(","), args.variants.split(","))
    common.write_result("gain_premium", {"rows": rows})


if __name__ == "__main__":
    main()
