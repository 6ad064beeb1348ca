#!/usr/bin/env bash
# Epoch time against the model step: the README's "Epoch time". One epoch of enet train
# (efficientnet_b0, 128 px, batch 64) between two benchmarks of the same training step; compare
# the epoch's train_s (and data_wait_s) in OUT/metrics.jsonl with 147 x the step time.
# Usage: scripts/epoch_check.sh [DATA] [OUT]     (about 6 minutes on a 2-core CPU)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/imagenette-224}
OUT=${2:-runs/epoch-check}
ENET=${ENET:-.venv/bin/enet}
bench() {
    "$ENET" bench model --models efficientnet_b0 --peers '' --batch-size 64 --res 128 \
        --precision fp32 --steps 9 --out "$OUT-bench-$1.json"
}
mkdir -p "$(dirname "$OUT")"
bench before
"$ENET" train --config configs/efficientnet_b0.yaml --data "$DATA" --epochs 1 --out "$OUT" \
    --overwrite
bench after
