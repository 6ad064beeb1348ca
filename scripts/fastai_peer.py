"""fastai's own training of enet's leaderboard recipe (configs/xresnet-leaderboard.yaml with
`data.crop=square`), the peer run beside enet's Imagewoof comparison (issue 28): the same data,
CPU and precision, so that a gap to the leaderboard's record can be told to be enet's or the
data's.

fastai 2.8 as its own Imagenette example and the record's notebook train: a DataBlock over the
class folders (`GrandparentSplitter(valid_name="val")`), `Resize(size)` (fastai's default
ResizeMethod.Crop: a random square on training, the centre square on validation) and
`FlipItem(0.5)`, ImageNet's mean and std; `xse_resnext50(act_cls=Mish, sa=True)` with the stem's
max-pool replaced by kornia's `MaxBlurPool2D(3, ceil_mode=True)`; `ranger` (momentum 0.95,
sqr_mom 0.99, eps 1e-6), `LabelSmoothingCrossEntropy()`, `fit_flat_cos(epochs, 8e-3, wd=1e-4,
pct_start=0.72)`, batch 32. On the CPU both train in bf16 autocast with channels_last (fastai's
MixedPrecision callback is CUDA-only, so a four-line callback does what it does with
`torch.autocast("cpu")`). Per-image results go to OUT/predictions.csv.gz in enet's format, so
`scripts/peer_verdict.py` sets them against enet's runs image by image.

fastai is not one of enet's dependencies; run it from a side environment, e.g.

    pip install --target /tmp/fa --no-deps fastai==2.8.12 fastcore==2.2.41 fasttransform==0.0.5 \\
        fastprogress==1.0.3 fastdownload==0.0.8 plum-dispatch==2.10.1 beartype==0.23.1 \\
        kornia==0.9.0 kornia-rs==0.2.0 pandas==3.1.1 scikit-learn==1.9.1 joblib threadpoolctl \\
        narwhals cloudpickle pytz
    PYTHONPATH=/tmp/fa .venv/bin/python scripts/fastai_peer.py \\
        --data ../shared/data/imagewoof-160 --out runs/fastai-peer-s0 --seed 0

(`--every 20 --epochs 1`: a quick check on every 20th image.)
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import platform
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="train/<class>/ and val/<class>/")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--bs", type=int, default=32)
    ap.add_argument("--lr", type=float, default=8e-3)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    ap.add_argument("--every", type=int, default=1, help="keep every Nth image (quick checks)")
    args = ap.parse_args()

    import fastai
    from fastai.callback.core import Callback
    from fastai.vision.all import (
        CategoryBlock,
        DataBlock,
        FlipItem,
        GrandparentSplitter,
        ImageBlock,
        LabelSmoothingCrossEntropy,
        Learner,
        Mish,
        Normalize,
        Resize,
        accuracy,
        get_image_files,
        imagenet_stats,
        parent_label,
        ranger,
        set_seed,
        xse_resnext50,
    )
    from kornia.filters import MaxBlurPool2D

    class CPUAutocast(Callback):
        """fastai's MixedPrecision on the CPU: bf16 autocast over the forward pass and the
        loss (entered before each batch, left after the loss), inputs in channels_last."""

        order = 10

        def before_batch(self):
            self.learn.xb = tuple(x.contiguous(memory_format=torch.channels_last) for x in self.xb)
            self.ctx = torch.autocast("cpu", dtype=torch.bfloat16)
            self.ctx.__enter__()

        def after_loss(self):
            self.ctx.__exit__(None, None, None)

        after_cancel_batch = after_loss

    set_seed(args.seed, reproducible=True)

    def items(path):
        return get_image_files(path)[:: args.every]

    block = DataBlock(
        blocks=(ImageBlock, CategoryBlock),
        splitter=GrandparentSplitter(valid_name="val"),
        get_items=items,
        get_y=parent_label,
        item_tfms=[Resize(args.size), FlipItem(0.5)],
        batch_tfms=[Normalize.from_stats(*imagenet_stats)],
    )
    dls = block.dataloaders(args.data, bs=args.bs, num_workers=args.workers)
    model = xse_resnext50(n_out=len(dls.vocab), act_cls=Mish, sa=True)
    model[3] = MaxBlurPool2D(3, ceil_mode=True)  # the stem's max-pool, as the record's notebook
    cbs = []
    if args.precision == "bf16":
        cbs.append(CPUAutocast())
        model = model.to(memory_format=torch.channels_last)

    def opt(params, lr):
        return ranger(params, lr, mom=0.95, sqr_mom=0.99, eps=1e-6)

    learn = Learner(
        dls,
        model,
        opt_func=opt,
        loss_func=LabelSmoothingCrossEntropy(),
        metrics=[accuracy],
        cbs=cbs,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    learn.fit_flat_cos(args.epochs, args.lr, wd=1e-4, pct_start=0.72)
    train_s = time.perf_counter() - start
    names = learn.recorder.metric_names[1:-1]  # train_loss, valid_loss, accuracy
    history = [dict(zip(names, r, strict=True)) for r in learn.recorder.values]

    probs, targets = learn.get_preds(dl=dls.valid)
    files = [Path(f) for f in dls.valid.items]
    predicted = probs.argmax(1)
    vocab = list(dls.vocab)
    # enet's order: val/<class>/<file> sorted
    order = sorted(range(len(files)), key=lambda i: (files[i].parent.name, files[i].name))
    with gzip.open(args.out / "predictions.csv.gz", "wt", newline="") as f:
        w = csv.writer(f)
        w.writerow(["index", "file", "true", "predicted", "correct", "p_true"])
        for k, i in enumerate(order):
            t, p = int(targets[i]), int(predicted[i])
            w.writerow([k, f"{files[i].parent.name}/{files[i].name}", vocab[t], vocab[p],
                        int(t == p), f"{float(probs[i, t]):.4f}"])  # fmt: skip
    top1 = 100 * float((predicted == targets).float().mean())
    validated = 100 * float(learn.validate()[1])  # fastai's own figure, the same images
    summary = {
        "peer": f"fastai {fastai.__version__}",
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "seed": args.seed,
        "epochs": args.epochs,
        "size": args.size,
        "batch_size": args.bs,
        "precision": args.precision,
        "every": args.every,
        "images": len(files),
        "top1": top1,
        "fastai_validate_top1": validated,
        "train_seconds": train_s,
        "epochs_record": [{k: float(v) for k, v in r.items()} for r in history],
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"fastai peer: top-1 {top1:.2f}% on {len(files)} images, {train_s / 60:.1f} min")


if __name__ == "__main__":
    main()
