"""Time-series libraries as the built-in forecaster's alternatives, on the same days as bench/forecaster.py.

Not part of ``make bench``: the libraries are not project dependencies, so this runs in a
throwaway virtualenv (the command is in docs/benchmarks.md). Each day from the 29th on is forecast
24 h ahead at 00:00 UTC from the 28 days before it; MAPE as in bench/forecaster.py. Also records
the import time, the first fit (compilation/caches) and the median fit, and the size of the
installed packages. Writes ``forecaster_libs.json``.
Run: ``/tmp/fc-eval/bin/python bench/forecaster_libs.py`` (needs statsforecast and statsmodels);
``FORECASTER_LIBS_STRIDE=7`` forecasts every 7th day only (the fits are slow).
"""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import site
import subprocess
import sys
import time
import warnings
from pathlib import Path

REGIONS = ("CISO", "PJM", "ERCO", "ISNE", "SE", "DE")
DATA = Path(os.environ.get("CARBONSHIFT_RESEARCH_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
OUT = Path(os.environ.get("BENCH_OUT", Path(__file__).resolve().parents[1] / ".state" / "bench-results"))


def _timed_import() -> dict[str, float]:
    """Seconds to import each library in a fresh interpreter (statsforecast imports statsmodels itself)."""
    out = {}
    for name, module in (("statsforecast", "statsforecast.models"), ("statsmodels", "statsmodels.tsa.holtwinters")):
        code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
        out[name] = float(subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                                         text=True).stdout)
    return out


def _size_mb(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 1e6


def main() -> None:
    warnings.filterwarnings("ignore")
    import_s = _timed_import()
    import numpy as np
    from statsforecast.models import MSTL, AutoETS
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    def load(region: str) -> np.ndarray:
        path = DATA / "dacf" / "data" / region / f"{region}_carbon_from_src_prod_forecasts_direct.csv"
        with path.open() as fh:
            return np.array([float(row["carbon_intensity"]) for row in csv.DictReader(fh)])

    # The built-in forecaster on the same days, loaded by path (this virtualenv lacks the operator's deps).
    spec = importlib.util.spec_from_file_location(
        "forecaster", Path(__file__).resolve().parents[1] / "operator" / "carbonshift" / "core" / "forecaster.py")
    assert spec and spec.loader
    builtin = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(builtin)
    models = {
        "built-in (core/forecaster.py)": lambda y, h: builtin.forecast_day_ahead(y, 3600, 0.0, h),
        "statsforecast AutoETS(24)": lambda y, h: AutoETS(season_length=24).forecast(y=y, h=h)["mean"],
        "statsforecast MSTL(24,168)": lambda y, h: MSTL(season_length=[24, 168]).forecast(y=y, h=h)["mean"],
        "statsmodels Holt-Winters(24)": lambda y, h: ExponentialSmoothing(
            y, trend=None, seasonal="add", seasonal_periods=24).fit().forecast(h),
    }
    stride = int(os.environ.get("FORECASTER_LIBS_STRIDE", "1"))
    result: dict[str, object] = {"import_s": import_s, "mape": {}, "fit_s": {}, "stride_days": stride}
    for name, fit in models.items():
        times: list[float] = []
        mape: dict[str, float] = {}
        for region in REGIONS:
            actual = load(region)
            errors = []
            for i in range(28 * 24, len(actual) - 23, 24 * stride):
                start = time.perf_counter()
                forecast = np.asarray(fit(actual[i - 28 * 24:i], 24))
                times.append(time.perf_counter() - start)
                errors.append(float(np.mean(np.abs(forecast - actual[i:i + 24]) / actual[i:i + 24])))
            mape[region] = 100 * float(np.mean(errors))
        result["mape"][name] = mape  # type: ignore[index]
        result["fit_s"][name] = {"first": times[0], "median": float(np.median(times))}  # type: ignore[index]
        print(name, {k: round(v, 2) for k, v in mape.items()}, flush=True)
    packages = Path(site.getsitepackages()[0])
    skip = {"pip", "setuptools", "_distutils_hack"}
    result["installed_mb"] = sum(_size_mb(p) for p in packages.iterdir()
                                 if p.is_dir() and p.name.split("-")[0] not in skip)
    result["numpy_mb"] = sum(_size_mb(p) for p in packages.iterdir() if p.name.startswith("numpy"))
    result["python"] = sys.version.split()[0]
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "forecaster_libs.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
