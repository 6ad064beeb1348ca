#!/usr/bin/env bash
# Publish a comparison's report as it stands: `enet compare-baselines --report-only` on the runs
# in OUT, then results.csv, report.md, verdict.json, compare.yaml and the plots copied into docs/results/NAME/
# (whose README.md, written by hand, says what finished and what it means).
#
#   scripts/publish_results.sh configs/study-b0-128-5ep.yaml /root/enet-runs/study-b0-128-5ep study-b0-128-5ep
set -euo pipefail
if [ $# -ne 3 ]; then
  echo "usage: $0 CONFIG OUT NAME   (NAME: the folder under docs/results/)" >&2
  exit 2
fi
config=$1 out=$2 name=$3
root=$(cd "$(dirname "$0")/.." && pwd)
enet=${ENET:-enet}
$enet compare-baselines --config "$config" --out "$out" --report-only
dest="$root/docs/results/$name"
mkdir -p "$dest"
cp "$out/results.csv" "$out/report.md" "$out/compare.yaml" "$dest/"
if [ -f "$out/verdict.json" ]; then cp "$out/verdict.json" "$dest/"; fi
cp "$out"/*.png "$dest/"
echo "published $out -> $dest"
