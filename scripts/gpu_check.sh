#!/usr/bin/env bash
# The accelerator check: run on a machine with an NVIDIA GPU and no network, in under 8 minutes.
# It does not assume DALI is installed there (the torch GPU path is checked instead) and runs the
# package from this checkout (PYTHONPATH), so nothing has to be installed beyond PyTorch,
# torchvision, typer, rich, pyyaml, matplotlib and pytest. Writes JSON under $OUT when set and
# prints one table last.
#
#   bash scripts/gpu_check.sh            (locally)
#   device run: bash scripts/gpu_check.sh   (timeout 600 leaves room for a rerun)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-$PWD/bench-results/gpu}"
mkdir -p "$OUT"
PY="${PYTHON:-python3}"
status=()
step() {  # step NAME TIMEOUT_S COMMAND...: run with a time limit, remember how it ended
  local name=$1 limit=$2; shift 2
  echo "=== $name"
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log" | tail -n 25
  local rc=${PIPESTATUS[0]}
  status+=("$name|$rc|$((SECONDS - t0))")
}

$PY - <<'PY'
import torch
assert torch.cuda.is_available(), "no CUDA device"
print(torch.__version__, torch.cuda.get_device_name(0), "bf16:", torch.cuda.is_bf16_supported())
PY

step cuda_tests 100 $PY -m pytest -q -m cuda tests/test_cuda.py
# limits add up to 8 minutes: each model warms up (and compiles) in a process of its own
for mode in eager compiled; do
  flag=""; limit=80; [ "$mode" = compiled ] && flag="--compile" && limit=200
  step "model_${mode}" "$limit" $PY -m enet bench model --models efficientnet_b0,xresnet50 \
    --peers efficientnet_b0,resnet50 --batch-size 128 --res 224 --precision bf16 \
    --channels-last --device cuda --steps 7 $flag --out "$OUT/model_${mode}.json"
done
step data_gpu 60 $PY -m enet bench data mini --res 224 --batch-size 64 --images 1024 \
  --passes 3 --loaders torch,baseline --device cuda --workers 8 --out "$OUT/data_gpu.json"
step train_gpu 40 $PY -m enet train --config configs/smoke.yaml --device cuda --loader torch \
  --epochs 2 --out "$OUT/train_run" --overwrite

$PY - "$OUT" "${status[@]}" <<'PY'
import json, sys
from pathlib import Path
out, steps = Path(sys.argv[1]), sys.argv[2:]
print("\n=== gpu_check summary")
print(f"{'step':12s} {'rc':>4s} {'s':>5s}  result")
rows = []
for item in steps:
    name, rc, secs = item.split("|")
    result = ""
    js = out / f"{name}.json"
    if js.exists():
        data = json.loads(js.read_text())
        result = "; ".join(f"{r['name']} {r['median']:.0f} {r['unit']}"
                           + (f" ({r['vs_torchvision']:.2f}x tv)" if "vs_torchvision" in r else "")
                           + (f" ({r['vs_baseline']:.2f}x)" if "vs_baseline" in r else "")
                           for r in data)
    summary = out / "train_run" / "summary.json"
    if name == "train_gpu" and summary.exists():
        s = json.loads(summary.read_text())
        result = f"top-1 {s['top1']:.1f}%, {s['img_per_s']:.0f} img/s, {s['precision']}"
    rows.append(dict(step=name, rc=int(rc), seconds=int(secs), result=result))
    print(f"{name:12s} {rc:>4s} {secs:>5s}  {result}")
(out / "summary.json").write_text(json.dumps(rows, indent=2))
PY
