"""Rebuilds operator/carbonshift/data/*.csv.gz (the traces shipped in the package) from the research data.

Run from the repository root with the research data beside it: `python hack/bundle_traces.py [DATA_DIR]`
(default ../shared/data). Only licence-clean sources are bundled (see operator/carbonshift/data/SOURCE.md):
Electricity Maps hourly data (ODbL 1.0) and DACF (Apache-2.0). Each output is one year or half-year,
hourly, columns `time,carbon_intensity` (+ `carbon_from_src_forecasts` for DACF), UTC, gzip'd
without a timestamp in the gzip header so that a rebuild is byte-identical.
"""

from __future__ import annotations

import csv
import gzip
import io
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "operator" / "carbonshift" / "data"
EM = "decarbonization-potential/downloaded_carbon_data/{zone}_2022_hourly.csv"
EM_PAPER = "decarbonization-potential/sim_what_ifs/prediction_error/data_output/added_error/{zone}.csv"
DACF = "dacf/data/{region}/{region}_carbon_from_src_prod_forecasts_direct.csv"
EM_LCA = "Carbon Intensity gCO₂eq/kWh (LCA)"


def _iso(text: str) -> str:
    value = datetime.fromisoformat(text.strip())
    value = value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _write(name: str, header: list[str], rows: list[list[str]]) -> None:
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    with open(OUT / f"{name}.csv.gz", "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as out:
        out.write(text.getvalue().encode())


def main(data: Path) -> None:
    for zone in ("ES", "NO", "BR", "US-CAL-CISO"):
        with open(data / EM.format(zone=zone), newline="", encoding="utf-8") as f:
            rows = [[_iso(r["Datetime (UTC)"]), r[EM_LCA]] for r in csv.DictReader(f)]
        _write(zone, ["time", "carbon_intensity"], rows)
    start = datetime(2022, 1, 1, tzinfo=timezone.utc)
    for zone in ("DE", "GB"):  # column 0 = the paper's real 2022 LCA trace; row i = hour i of 2022
        with open(data / EM_PAPER.format(zone=zone), newline="", encoding="utf-8") as f:
            rows = [[(start + timedelta(hours=i)).strftime("%Y-%m-%dT%H:%M:%SZ"), r["0"]]
                    for i, r in enumerate(csv.DictReader(f))]
        _write(zone, ["time", "carbon_intensity"], rows)
    for zone, region in (("SE", "SE"), ("US-MIDA-PJM", "PJM"), ("US-TEX-ERCO", "ERCO"), ("US-NE-ISNE", "ISNE")):
        with open(data / DACF.format(region=region), newline="", encoding="utf-8") as f:
            rows = [[_iso(r["UTC time"]), r["carbon_intensity"], r["carbon_from_src_forecasts"]]
                    for r in csv.DictReader(f)]
        _write(zone, ["time", "carbon_intensity", "carbon_from_src_forecasts"], rows)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if sys.argv[1:] else Path(__file__).resolve().parents[2] / "shared" / "data")
