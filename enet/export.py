"""`enet export CKPT --format onnx|exported|torchscript`: a checkpoint's model (eval mode) as a
file other runtimes load, with a dynamic batch axis.

- onnx: torch.onnx's exporter (`dynamo=True`: torch.export underneath, the path PyTorch keeps;
  the TorchScript-based one is deprecated); needs the `onnx` and `onnxscript` packages
  (`pip install enet[export]`), checked with onnxruntime in the tests.
- exported: torch.export's ExportedProgram (`torch.export.save`, `.pt2`), loadable with
  `torch.export.load` and runnable without enet: the maintained successor of TorchScript.
- torchscript: `torch.jit.trace`, loadable with `torch.jit.load` while torch still ships it
  (torch 2.14 marks torch.jit deprecated; kept for the runtimes that only read TorchScript).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from pathlib import Path

import torch

from .choices import EXPORT_FORMATS, one_of
from .class_names import display_names
from .config import check_res
from .errors import EnetError
from .evaluate import load_model
from .fileio import FILE_MODE
from .settings import resolve_crop_pct, resolve_normalization, resolve_resolution
from .train.checkpoint import open_checkpoint


def export(
    checkpoint: str, fmt: str, out: str, *, ema: bool = False, res: int | None = None
) -> dict:
    """Write the model to OUT; returns what was written (format, file, input shape, classes)."""
    if fmt not in EXPORT_FORMATS:
        raise EnetError(f"--format must be {one_of(EXPORT_FORMATS)}, got {fmt!r}")
    check_res(res)
    path, cfg, classes, weights, *_ = open_checkpoint(checkpoint, ema)
    model = load_model(cfg, weights, len(classes), torch.device("cpu"))
    model = model.eval().to(memory_format=torch.contiguous_format)
    res = res or cfg.data.eval_res or resolve_resolution(cfg)
    example = torch.zeros(2, 3, res, res)
    target = Path(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    mean, std = resolve_normalization(cfg)
    crop_pct = resolve_crop_pct(cfg)
    metadata = {
        "model": cfg.model.name,
        "res": str(res),
        "input": INPUT,
        "mean": json.dumps(mean),
        "std": json.dumps(std),
        "crop_pct": str(crop_pct),
        "classes": json.dumps(classes),
        "class_names": json.dumps(display_names(classes)),
    }
    try:
        _WRITERS[fmt](model, example, tmp, metadata)
        os.chmod(tmp, FILE_MODE)  # mkstemp's 0600 -> what open() would have given
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return dict(
        format=fmt, file=str(target), checkpoint=str(path), model=cfg.model.name, res=res,
        input=INPUT, mean=list(mean), std=list(std), crop_pct=crop_pct,
        output="logits: (batch, classes)", classes=classes, ema=ema,
    )  # fmt: skip


INPUT = "images: float32 (batch, 3, res, res), RGB in 0-1 less mean, over std (per channel)"


def _batch_dim():
    return {"x": {0: torch.export.Dim("batch", min=1, max=4096)}}


def _onnx(model, example, path: str, metadata: dict[str, str]) -> None:
    """ONNX, the class ids and names (JSON lists), model, resolution and input convention in
    the model's metadata_props (onnxruntime: `session.get_modelmeta().custom_metadata_map`)."""
    try:
        import onnx
        import onnxscript  # noqa: F401
    except ImportError:
        raise EnetError(
            "--format onnx needs the onnx and onnxscript packages: pip install 'enet[export]'"
        ) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (example,),
            path,
            dynamo=True,
            dynamic_shapes=_batch_dim(),
            input_names=["images"],
            output_names=["logits"],
            external_data=False,
            verbose=False,
        )
    proto = onnx.load(path)
    onnx.helper.set_model_props(proto, metadata)
    onnx.save(proto, path)


def _exported(model, example, path: str, metadata: dict[str, str]) -> None:
    with torch.no_grad():
        program = torch.export.export(model, (example,), dynamic_shapes=_batch_dim())
    torch.export.save(program, path)


def _torchscript(model, example, path: str, metadata: dict[str, str]) -> None:
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # torch.jit's deprecation notice
        traced = torch.jit.trace(model, example)
        torch.jit.save(traced, path)


_WRITERS = {"onnx": _onnx, "exported": _exported, "torchscript": _torchscript}
