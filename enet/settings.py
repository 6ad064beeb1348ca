"""Settings resolved from a config for the machine at hand: precision, autocast dtype,
resolution, the model's options. One home, used by training, evaluation and the benchmarks."""

from __future__ import annotations

import torch

from .config import Config
from .errors import EnetError
from .models import get_model_info


def resolve_precision(precision: str, device: torch.device) -> str:
    """auto: bf16 on a CUDA device that has it (fp16 otherwise), fp32 on the CPU."""
    if precision != "auto":
        if precision != "fp32" and device.type != "cuda":
            raise EnetError(f"--precision {precision} needs a CUDA device; use fp32 on the CPU")
        return precision
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The dtype torch.autocast runs at for a resolved precision (None: no autocast)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def use_fast_cuda_kernels(device: torch.device) -> None:
    """On CUDA: cuDNN picks the fastest convolution algorithms for the (fixed) input shapes,
    and fp32 matrix products may use TF32 (bf16 and fp16 runs are unaffected)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")


def resolve_resolution(cfg: Config) -> int:
    """Training resolution: data.res, else the model's own."""
    return cfg.data.res or get_model_info(cfg.model.name).resolution


def model_options(cfg: Config) -> dict:
    """create_model's keyword options from the config's model section (unset ones left out)."""
    m = cfg.model
    opts: dict = {"msd_samples": m.msd_samples}
    if m.dropout is not None:
        opts["dropout"] = m.dropout
    if m.drop_connect_rate is not None:
        opts["drop_connect_rate"] = m.drop_connect_rate
    for flag in ("zero_init_residual", "tf_init", "fan_in_head", "sa"):
        if getattr(m, flag):
            opts[flag] = True
    if m.act is not None:
        opts["act"] = m.act
    if m.pool != "max":
        opts["pool"] = m.pool
    return opts
