#!/usr/bin/env bash
# The README's first accuracy figures: 5 epochs on Imagenette at 128 px, one seed, each model
# with its family's recipe as it was then (EfficientNet's: study-b0-base.yaml, before the B0
# study changed efficientnet_b0.yaml; plus drop-connect and dropout, and the paper's recipe).
# About 80 minutes on a 2-core CPU.
# Usage: scripts/accuracy.sh [DATA] [OUT]   (DATA: a folder or a dataset name; default the
# shared 224x224 copy, OUT default runs/accuracy)
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/imagenette-224}
OUT=${2:-runs/accuracy}
ENET=${ENET:-.venv/bin/enet}
mkdir -p "$OUT"
train() {  # name, then enet train's arguments
    local name=$1
    shift
    "$ENET" train --data "$DATA" --epochs 5 --out "$OUT/$name" --overwrite "$@" \
        > "$OUT/$name.log" 2>&1
}
train xresnet18 --config configs/xresnet50.yaml --model xresnet18
train efficientnet_b0 --config configs/study-b0-base.yaml
train efficientnet_b0-reg --config configs/study-b0-base.yaml \
    --set model.drop_connect_rate=0.2 --set model.dropout=0.2
train efficientnet_b0-paper --config configs/efficientnet_b0_paper.yaml
"$(dirname "$ENET")/python" - "$OUT" <<'PY'
import json
import sys

for run in ("xresnet18", "efficientnet_b0", "efficientnet_b0-reg", "efficientnet_b0-paper"):
    s = json.load(open(f"{sys.argv[1]}/{run}/summary.json"))
    print(f"{run:24} top-1 {s['top1']:6.2f}  top-5 {s['top5']:6.2f}  "
          f"wall {s['wall_s'] / 60:5.1f} min  {s['img_per_s']:5.1f} img/s")
PY
