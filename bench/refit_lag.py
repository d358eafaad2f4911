"""How long the event loop stalls while the learned forecast policy refits 100 regions.

Once an hour (a new issue hour) every region's ``ForecastConditioner`` recomputes its learned
errors (~10-15 ms each, mostly the built-in forecaster's backtests). Run on the event loop, that
stalls watches, probes and dispatches for the whole refit; the operator runs it on a copy in one
worker thread (``signalhub._conditioned``). This measures the longest gap between 1 ms ticks of
a coroutine during the refit, both ways. Synthetic data: 28 days of hourly history and a full
record (28 x 24 forecasts of 48 h) per region. Machine-dependent (the worker thread still
shares the GIL with the loop). Run: ``.venv/bin/python bench/refit_lag.py``; writes
``$BENCH_OUT/refit_lag.json`` when BENCH_OUT is set.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np

from carbonshift.signals.conditioning import RECORD_LEADS, ForecastConditioner
from carbonshift.signals.record import ForecastRecord
from carbonshift.signals.series import Series, SeriesKind

HOUR = timedelta(hours=1)
REGIONS = 100
NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)


def _series(start: datetime, values: np.ndarray, kind: SeriesKind) -> Series:
    points = tuple((start + i * HOUR, float(v)) for i, v in enumerate(values))
    return Series(points=points, unit="gCO2eq/kWh", source="bench:grid", observed_at=NOW, kind=kind)


def _inputs(rng: np.random.Generator) -> tuple[list[ForecastConditioner], Series, Series]:
    days = 28
    hours = np.arange(days * 24)
    truth = 300 + 120 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 15, hours.size)
    history = _series(NOW - days * 24 * HOUR, truth, SeriesKind.ACTUAL)
    forecast = _series(NOW, truth[-48:] + 20, SeriesKind.FORECAST)
    first = int(NOW.timestamp() // 3600) - days * 24
    record = ForecastRecord(np.arange(first, first + days * 24, dtype=np.int64),
                            (300 + rng.normal(0, 40, (days * 24, RECORD_LEADS))).astype(np.float32),
                            np.empty(0, np.int64), np.empty(0), np.empty(0, np.int64), None)
    regions = []
    for _ in range(REGIONS):
        conditioner = ForecastConditioner()
        conditioner.import_record(record, NOW)
        regions.append(conditioner)
    return regions, history, forecast


async def _refit(regions: list[ForecastConditioner], history: Series, forecast: Series,
                 pool: ThreadPoolExecutor | None) -> dict[str, float]:
    gaps: list[float] = []
    done = False

    async def ticker() -> None:
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    async def one(conditioner: ForecastConditioner) -> None:
        if pool is None:
            conditioner.condition(forecast, history, NOW, 48 * HOUR)
            return
        twin = conditioner.detached()
        await asyncio.get_running_loop().run_in_executor(pool, twin.condition, forecast, history, NOW, 48 * HOUR)
        conditioner.adopt(twin)

    tick = asyncio.create_task(ticker())
    await asyncio.sleep(0.01)
    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(c) for c in regions))
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    done = True
    await tick
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "longest_stall_ms": round(max(gaps) * 1000),
            "p99_stall_ms": round(float(np.percentile(gaps, 99)) * 1000)}


def main() -> dict[str, Any]:
    results: dict[str, Any] = {"regions": REGIONS}
    for name in ("on_loop", "worker_thread"):
        regions, history, forecast = _inputs(np.random.default_rng(0))
        with ThreadPoolExecutor(max_workers=1) as pool:
            results[name] = asyncio.run(_refit(regions, history, forecast, pool if name == "worker_thread" else None))
        print(f"{name}: {results[name]}")
    out = os.environ.get("BENCH_OUT")
    if out:
        Path(out, "refit_lag.json").write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
