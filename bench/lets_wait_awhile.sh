#!/bin/sh
# Carbon savings on the Let's Wait Awhile data (Wiesner et al., Middleware '21,
# doi:10.1145/3464298.3493399): ML jobs to the next working day, 5% forecast error.
# Usage: sh bench/lets_wait_awhile.sh [extra simulate flags]   (run from the repository root)
D="${CARBONSHIFT_RESEARCH_DATA:-../shared/data}/lets-wait-awhile"
for country in ger gb; do
  for flag in "" "--interruptible"; do
    .venv/bin/carbonshift simulate --trace "$country=$D/${country}_ci.csv" --workload ml \
      --whole-window --forecast-error 0.05 $flag "$@"
  done
done
