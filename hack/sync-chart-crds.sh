#!/usr/bin/env bash
# Copies the generated CRDs (crds/*.yaml, the single source, from `python -m carbonshift.api.crdgen`)
# into the Helm chart (charts/carbonshift/crds/), removing copies whose source is gone.
#   hack/sync-chart-crds.sh          copy
#   hack/sync-chart-crds.sh --check  exit 1 (and say how to fix) when the chart's copy is stale
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
src=$root/crds
dst=$root/charts/carbonshift/crds

if [ "${1:-}" = "--check" ]; then
  if diff -r -q "$src" "$dst" >&2; then
    exit 0
  fi
  echo "charts/carbonshift/crds/ differs from crds/; run: hack/sync-chart-crds.sh (or make chart-crds)" >&2
  exit 1
fi

mkdir -p "$dst"
for f in "$dst"/*.yaml; do
  [ -e "$f" ] || continue
  [ -e "$src/$(basename "$f")" ] || { rm -f "$f"; echo "removed $(basename "$f")" >&2; }
done
cp "$src"/*.yaml "$dst"/
echo "synced $(ls "$src"/*.yaml | wc -l) CRDs into ${dst#"$root"/}" >&2
