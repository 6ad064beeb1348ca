#!/usr/bin/env bash
# The accelerator check: one run on a machine with an NVIDIA GPU and no network, its step
# limits adding to 9 minutes. It does not assume DALI is installed there (the torch GPU path
# is checked instead) and runs the package from this checkout (PYTHONPATH): nothing beyond PyTorch, torchvision,
# typer, rich, pyyaml, matplotlib and pytest. What a device run can return is small: $OUT gets
# at most 6 files (gpu_check.log, model_eager.json, model_compiled.json, data_gpu.json,
# crops_gpu.json, summary.json), no checkpoints (runs go to a scratch folder), and one table
# is printed last.
#
# Time limits, from the first device runs (H200, 2026-11-30): a model's first training step at
# batch 256, 224 px, bf16 took 45 s there (cuDNN's algorithm search, benchmark mode as enet
# train runs it, and the first CUDA calls), the next ones 0.05 s. So a bench process costs
# about a minute before its first timed step: one model per family here, B0 against its
# torchvision peer eager and alone compiled.
#
#   bash scripts/gpu_check.sh            (locally; OUT defaults to bench-results/gpu)
#   device run: bash scripts/gpu_check.sh   (timeout 600 leaves room for a rerun)
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT="${OUT:-$PWD/bench-results/gpu}"
SCRATCH="$(mktemp -d)"
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: > "$LOG"
PY="${PYTHON:-python3}"
status=()
step() {  # step NAME TIMEOUT_S COMMAND...: run with a time limit, remember how it ended
  local name=$1 limit=$2; shift 2
  echo "=== $name" | tee -a "$LOG"
  local t0=$SECONDS
  timeout "$limit" "$@" 2>&1 | tee -a "$LOG" | tail -n 15
  local rc=${PIPESTATUS[0]}
  status+=("$name|$rc|$((SECONDS - t0))")
}

$PY - <<'PY' 2>&1 | tee -a "$LOG"
import torch
assert torch.cuda.is_available(), "no CUDA device"
print(torch.__version__, torch.cuda.get_device_name(0), "bf16:", torch.cuda.is_bf16_supported())
PY

# (a) the CUDA tests, bad files through the torch GPU path, (b) synchronisations per step
step cuda_tests 120 $PY -m pytest -q -s -m cuda tests/test_cuda.py --basetemp "$SCRATCH/pytest"
# the training step at 224 px, bf16, channels_last: eager against torchvision's, then compiled
step model_eager 120 $PY -m enet bench model --models efficientnet_b0 \
  --peers efficientnet_b0 --batch-size 256 --res 224 --precision bf16 \
  --channels-last --device cuda --steps 7 --out "$OUT/model_eager.json"
step model_compiled 110 $PY -m enet bench model --models efficientnet_b0 \
  --peers "" --batch-size 256 --res 224 --precision bf16 --channels-last \
  --device cuda --steps 7 --compile --out "$OUT/model_compiled.json"
step data_gpu 35 $PY -m enet bench data mini --res 224 --batch-size 64 --images 1024 \
  --passes 3 --loaders torch,baseline --device cuda --workers 8 --out "$OUT/data_gpu.json"
# the torch GPU path's crops at batch 256: image by image against equal boxes resized together
step crops_gpu 25 $PY scripts/bench_resized_crops.py --device cuda --batch 256 --res 128 \
  --out "$OUT/crops_gpu.json"
# with the side-stream prefetch, progressive resizing (32 -> 64 px), MixUp/CutMix, erasing and
# the EMA's warm-up: every new path of the step on the device once
step train_gpu 45 $PY -m enet train --config configs/smoke.yaml --device cuda --loader torch \
  --epochs 2 --out "$SCRATCH/train_run" --overwrite --set data.min_res=32 \
  --set data.mixup_alpha=0.2 --set data.cutmix_alpha=1.0 --set data.erase_p=0.25 \
  --set train.ema_decay=0.99 --set train.ema_warmup=true
# (c) a one-minute budget must be spent (0.85-1.15x)
step budget_gpu 80 $PY -m enet train --config configs/smoke.yaml --device cuda --loader torch \
  --minutes 1 --out "$SCRATCH/budget_run" --overwrite

# (d) one table, last
$PY - "$OUT" "$SCRATCH" "${status[@]}" <<'PY'
import json, sys
from pathlib import Path
out, scratch, steps = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]

def read(path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None

rows = []
print("\n=== gpu_check summary")
print(f"{'step':15s} {'rc':>4s} {'s':>5s}  result")
for item in steps:
    name, rc, secs = item.split("|")
    result, data = "", read(out / f"{name}.json")
    if data:
        result = "; ".join(
            f"{r['name']} {r['median']:.0f} {r['unit']}"
            + (f" ({r['vs_torchvision']:.2f}x tv)" if "vs_torchvision" in r else "")
            + (f" ({r['vs_baseline']:.2f}x)" if "vs_baseline" in r else "")
            for r in data
        )
    if name == "cuda_tests" and (syncs := read(scratch / "pytest" / "syncs.json")):
        result = f"{syncs['syncs']} host syncs, {syncs['per_step']:.1f} per step"
    if name == "train_gpu" and (s := read(scratch / "train_run" / "summary.json")):
        wait = s["data_wait_s"] / max(s["train_s"], 1e-9)
        result = (f"top-1 {s['top1']:.1f}%, {s['img_per_s']:.0f} img/s, loader wait "
                  f"{100 * wait:.1f}%, {s['precision']}")
        data = s
    if name == "budget_gpu" and (s := read(scratch / "budget_run" / "summary.json")):
        result = f"{s['wall_s']:.1f} s of 60 ({s['wall_s'] / 60:.2f}x), {s['steps']} steps"
        data = s
    rows.append(dict(step=name, rc=int(rc), seconds=int(secs), result=result, data=data))
    print(f"{name:15s} {rc:>4s} {secs:>5s}  {result}")
(out / "summary.json").write_text(json.dumps(rows, indent=1))
PY
rm -rf "$SCRATCH"
