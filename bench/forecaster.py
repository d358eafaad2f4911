"""The built-in forecaster against DACF's day-ahead forecast and the weekly-profile fallback.

Data: the six DACF grids, 2021-07-01..12-31 hourly, actual intensity next to DACF's day-ahead
forecast (``../shared/data/dacf``; Maji, Sitaraman, Shenoy, "DACF: Day-ahead Carbon Intensity
Forecasting of Power Grids using Machine Learning", e-Energy '22). Every day from the 29th on is
forecast at its 00:00 UTC from the 28 days before it (what the operator's fallback fetches):

- ``builtin``: ``core.forecaster.forecast_day_ahead``;
- ``weekly profile``: ``signals.profile.profile_forecast`` (mean per hour of week), today's fallback;
- ``DACF``: the file's forecast column, issued the day before by DACF (weather-driven), as-is.

MAPE as the DACF paper computes it (mean over days of the day's mean |error| / actual). Also: the
share of the oracle's saving when a 1 h job submitted at each hour picks the hour its forecast
says is cheapest within 24 h (one decision, not the planner: the 36-row planner harness is in
bench/forecasts.py), and the cost of refitting 100 regions. Writes ``forecaster.json``.
Run: ``CARBONSHIFT_RESEARCH_DATA=../shared/data .venv/bin/python bench/forecaster.py``.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from typing import Any

import numpy as np
import pandas as pd

import common

from carbonshift.core.forecaster import forecast_day_ahead
from carbonshift.signals.profile import profile_forecast
from carbonshift.signals.series import Series
from carbonshift.signals.tracedata import research_data_dir

REGIONS = ("CISO", "PJM", "ERCO", "ISNE", "SE", "DE")
HISTORY_DAYS = 28
HOUR = 3600


def load(region: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(epoch seconds, actual g/kWh, DACF forecast g/kWh), hourly."""
    path = research_data_dir() / "dacf" / "data" / region / f"{region}_carbon_from_src_prod_forecasts_direct.csv"
    frame = pd.read_csv(path, usecols=["UTC time", "carbon_intensity", "carbon_from_src_forecasts"])
    times = pd.to_datetime(frame["UTC time"], utc=True)
    epochs = (times - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds().to_numpy()
    return epochs, frame["carbon_intensity"].to_numpy(float), frame["carbon_from_src_forecasts"].to_numpy(float)


def weekly_profile(epochs: np.ndarray, actual: np.ndarray, i: int, horizon: int) -> np.ndarray:
    """The operator's current fallback, through its own code path."""
    start = i - HISTORY_DAYS * 24
    points = tuple((datetime.fromtimestamp(epochs[k], timezone.utc), float(actual[k])) for k in range(start, i))
    now = datetime.fromtimestamp(epochs[i], timezone.utc)
    history = Series(points=points, unit="gCO2eq/kWh", source="bench", observed_at=points[-1][0])
    return profile_forecast(history, now=now, horizon=timedelta(hours=horizon)).values


def mape(forecast: np.ndarray, actual: np.ndarray) -> float:
    return float(np.mean(np.abs(forecast - actual) / actual))


def region_result(region: str, stride: int) -> dict[str, Any]:
    epochs, actual, dacf = load(region)
    first = HISTORY_DAYS * 24
    errors: dict[str, list[float]] = {"builtin": [], "weekly_profile": [], "dacf": []}
    for i in range(first, len(actual) - 23, 24 * stride):
        day = actual[i:i + 24]
        errors["builtin"].append(mape(forecast_day_ahead(actual[i - first:i], HOUR, epochs[i], 24), day))
        errors["weekly_profile"].append(mape(weekly_profile(epochs, actual, i, 24), day))
        errors["dacf"].append(mape(dacf[i:i + 24], day))
    # One decision per hour: a 1 h job may start in any of the next 24 hours.
    saved = dict.fromkeys(errors, 0.0)
    oracle = 0.0
    for i in range(first, len(actual) - 24, 3 * stride):
        window = actual[i:i + 24]
        picks = {"builtin": forecast_day_ahead(actual[i - first:i], HOUR, epochs[i], 24),
                 "weekly_profile": weekly_profile(epochs, actual, i, 24), "dacf": dacf[i:i + 24]}
        for name, forecast in picks.items():
            saved[name] += window[0] - window[int(np.argmin(forecast))]
        oracle += window[0] - window.min()
    return {"region": region, "days": len(errors["dacf"]),
            "mape_pct": {k: 100 * float(np.mean(v)) for k, v in errors.items()},
            "pick_fraction_of_oracle": {k: v / oracle if oracle > 0 else None for k, v in saved.items()}}


def refit_cost(regions: int = 100, repeats: int = 5) -> dict[str, float]:
    """Seconds to forecast 48 h for ``regions`` regions from 28 days of hourly history (median of repeats)."""
    rng = np.random.default_rng(0)
    hours = np.arange(HISTORY_DAYS * 24)
    histories = [300 + 80 * np.sin(2 * np.pi * hours / 24 + rng.uniform(0, 6)) + rng.normal(0, 20, hours.size)
                 for _ in range(regions)]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        for h in histories:
            forecast_day_ahead(h, HOUR, 0.0, 48)
        times.append(time.perf_counter() - start)
    return {"regions": regions, "history_hours": int(hours.size), "horizon_hours": 48,
            "median_s": float(np.median(times)), "max_s": float(np.max(times))}


def main() -> None:
    stride = 7 if common.quick() else 1
    rows = [region_result(r, stride) for r in REGIONS]
    common.write_result("forecaster", {"quick": common.quick(), "history_days": HISTORY_DAYS, "rows": rows,
                                       "refit": refit_cost(regions=100, repeats=3 if common.quick() else 5)})
    for row in rows:
        print(row["region"], {k: round(v, 2) for k, v in row["mape_pct"].items()})


if __name__ == "__main__":
    main()
