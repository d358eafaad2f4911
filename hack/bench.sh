#!/usr/bin/env bash
# make bench: run every benchmark and rewrite docs/benchmarks.md (see bench/report.py).
#
# Knobs (env):
#   BENCH_QUICK=1          small sizes everywhere (a few minutes; the operator part with 60 jobs)
#   BENCH_SKIP_OPERATOR=1  skip the control-plane part (its section then says "not run")
#   BENCH_SIZES=1000,5000  CarbonAwareJob counts of the operator part (created in a burst)
#   BENCH_KUEUE_JOBS=1000  Jobs of the Kueue part (with and without carbonshift's check and dispatcher)
#   BENCH_PACED_SIZES=5000 counts run again with creates paced at 10/s (latency below saturation)
#   BENCH_OUT, BENCH_IMG   results folder (.state/bench-results), PNG folder (docs/img)
#   BENCH_DOC              the file to write (docs/benchmarks.md)
# The operator part uses its OWN control plane: CARBONSHIFT_STATE_DIR=.state/bench,
# CARBONSHIFT_PORT_OFFSET=300 (never the developers' .state/cluster), started fresh and stopped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
PY=$ROOT/.venv/bin/python
export BENCH_OUT=${BENCH_OUT:-$ROOT/.state/bench-results}
export BENCH_IMG=${BENCH_IMG:-$ROOT/docs/img}
DOC=${BENCH_DOC:-$ROOT/docs/benchmarks.md}
export CARBONSHIFT_STATE_DIR=$ROOT/.state/bench
export CARBONSHIFT_PORT_OFFSET=300
export PYTHONPATH=$ROOT/operator${PYTHONPATH:+:$PYTHONPATH}
rm -rf "$BENCH_OUT" && mkdir -p "$BENCH_OUT" "$BENCH_IMG"

step() { echo "== $* ($(date -u +%H:%M:%S))"; }
step machine;          "$PY" bench/common.py machine
step carbon_temporal;  "$PY" bench/carbon_temporal.py
step carbon_spatial;   "$PY" bench/carbon_spatial.py
step planner_bound;    "$PY" bench/planner_bound.py
step carbon_onsite;    "$PY" bench/carbon_onsite.py
step planner_scaling;  "$PY" bench/planner_scaling.py
step forecaster;       "$PY" bench/forecaster.py
step solar_forecast;   "$PY" bench/solar_forecast.py
step forecast_rows;    "$PY" bench/forecast_rows.py; "$PY" bench/peers.py
step planner_speed;    "$PY" bench/planner_speed.py | tee "$BENCH_OUT/planner_speed.txt"

cluster_down() {
  hack/cluster down >/dev/null 2>&1 || true
  rm -rf "$ROOT/.state/bench"   # the bench's own control plane state, nothing else
}
if [[ "${BENCH_SKIP_OPERATOR:-0}" != "1" ]]; then
  step operator_scale
  trap cluster_down EXIT
  cluster_down
  hack/cluster up >/dev/null
  if [[ "${BENCH_QUICK:-0}" == "1" ]]; then
    "$PY" bench/operator_scale.py --sizes "${BENCH_SIZES:-60}" --profile-seconds 0
  else
    "$PY" bench/operator_scale.py --sizes "${BENCH_SIZES:-1000,5000}" --paced-sizes "${BENCH_PACED_SIZES:-5000}" --paced-rate 10
  fi
  cluster_down
  step kueue_latency
  if hack/cluster up --kueue >/dev/null; then
    "$PY" bench/kueue_latency.py --jobs "${BENCH_KUEUE_JOBS:-$([[ "${BENCH_QUICK:-0}" == "1" ]] && echo 60 || echo 1000)}" \
      | tee "$BENCH_OUT/kueue_latency.txt"
  else
    echo "Kueue did not start; its section says so" >&2
  fi
  cluster_down
  trap - EXIT
fi
step report;           "$PY" bench/report.py --output "$DOC" --previous "$ROOT/docs/benchmarks.md"
