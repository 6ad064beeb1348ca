"""Record fastai's outputs for enet's exactness tests: its XResNet models
(tests/test_models.py) and, with --resize, its `Resize` crop (tests/test_data.py).

For each case: enet's model is built with seed 0, its weights (parameters and buffers, in
registration order) are copied into fastai's model of the same name and options, and fastai's
outputs on a seeded input, in eval mode and in train mode (BatchNorm on batch statistics, one
spectral-norm power iteration), are stored with fastai's parameter counts in
tests/data/fastai_xresnet.pt. The test rebuilds enet's model the same way and compares, so CI
needs no fastai. Run with fastai importable (measured with fastai 2.8.12):

    python scripts/fastai_reference.py            # models (fastai 2.8.12)
    python scripts/fastai_reference.py --resize   # Resize(32) crops (fastai 2.8.4)

--resize: fastai's `Resize(32)` (ResizeMethod.Crop, its default) of each real non-square
training image in tests/data/woof, at fixed crop places (the fractions its training call draws
at random; (0.5, 0.5) is its validation crop), as uint8 HWC arrays in
tests/data/woof/fastai_resize.pt.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from fastai.layers import Mish
from fastai.vision.models import xresnet as fx
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fastai_util import reference_input, seeded_model  # noqa: E402

CASES = [
    ("xresnet18", {}),
    ("xresnet50", {}),
    ("xresnext18", {}),
    ("xresnext34", {}),
    ("xresnext50", {}),
    ("xse_resnet18", {}),
    ("xse_resnet34", {}),
    ("xse_resnext18", {}),
    ("xse_resnext34", {}),
    ("xse_resnext50", {}),
    ("xse_resnext50", {"act": "mish", "sa": True}),
    ("xresnet18", {"act": "mish", "sa": True}),
    ("xresnet50", {"act": "mish", "sa": True}),
]
OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "fastai_xresnet.pt"
WOOF = OUT.parent / "woof"
RESIZE_PLACES = [(0.0, 0.0), (0.5, 0.5), (0.99, 0.3), (0.25, 0.75)]  # (across, down)


def fastai_model(name: str, num_classes: int, opts: dict) -> nn.Module:
    kwargs = {}
    if opts.get("act") == "mish":
        kwargs["act_cls"] = Mish
    if opts.get("sa"):
        kwargs["sa"] = True
    return getattr(fx, name)(n_out=num_classes, **kwargs)


def case_key(name: str, opts: dict) -> str:
    return name + "".join(f"-{k}={v}" for k, v in sorted(opts.items()))


def main() -> None:
    records = {}
    for name, opts in CASES:
        theirs = fastai_model(name, 10, opts)
        params = {
            n: sum(p.numel() for p in fastai_model(name, n, opts).parameters()) for n in (10, 1000)
        }
        ours = seeded_model(name, opts)
        ours_state, theirs_state = ours.state_dict(), theirs.state_dict()
        assert len(ours_state) == len(theirs_state), (name, len(ours_state), len(theirs_state))
        copied = {}
        for (k_o, v_o), (k_t, v_t) in zip(ours_state.items(), theirs_state.items(), strict=True):
            assert v_o.shape == v_t.shape, (name, k_o, k_t, v_o.shape, v_t.shape)
            copied[k_t] = v_o.clone()
        theirs.load_state_dict(copied)
        x = reference_input()
        with torch.no_grad():
            eval_out = theirs.eval()(x)
            train_out = theirs.train()(x)
        records[case_key(name, opts)] = {
            "name": name,
            "opts": opts,
            "params": params,
            "eval": eval_out,
            "train": train_out,
        }
        print(f"{case_key(name, opts)}: params {params}")
    torch.save({"fastai": "2.8.12", "cases": records}, OUT)
    print(f"wrote {OUT}")


def record_resize() -> None:
    import fastai
    import numpy as np
    from fastai.vision.augment import Resize
    from fastai.vision.core import PILImage

    records = {}
    for path in sorted((WOOF / "train").rglob("*.JPEG")):
        image = PILImage.create(path)
        crops = {}
        for place in RESIZE_PLACES:
            resize = Resize(32)
            resize.pcts = place  # what before_call draws on the training split
            crops[place] = torch.from_numpy(np.asarray(resize.encodes(image)).copy())
        size = tuple(int(x) for x in image.size)
        records[str(path.relative_to(WOOF))] = {"size": size, "crops": crops}
        print(f"{path.name}: {image.size[0]}x{image.size[1]}")
    torch.save({"fastai": fastai.__version__, "images": records}, WOOF / "fastai_resize.pt")
    print(f"wrote {WOOF / 'fastai_resize.pt'}")


if __name__ == "__main__":
    record_resize() if "--resize" in sys.argv[1:] else main()
