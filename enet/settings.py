"""Settings resolved from a config for the machine at hand: precision, autocast dtype,
resolution, the model's options. One home, used by training, evaluation and the benchmarks."""

from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch

from .config import Config
from .data.common import IMAGENET_MEAN, IMAGENET_STD
from .errors import EnetError
from .models import get_model_info


@functools.cache  # the hardware does not change within a process
def cpu_bf16_support() -> str | None:
    """What gives this CPU native bf16 arithmetic (None: nothing; bf16 would be emulated, slower
    than fp32). x86: torch's own feature checks for AVX512-BF16 and AMX, the instructions
    oneDNN's bf16 kernels use; 64-bit Arm: the `bf16` feature the kernel lists in
    /proc/cpuinfo."""
    machine = platform.machine().lower()
    if machine in ("x86_64", "amd64"):
        if torch.cpu._is_amx_tile_supported():
            return "AMX"
        if torch.cpu._is_avx512_bf16_supported():
            return "AVX512-BF16"
        return None
    if machine in ("aarch64", "arm64"):
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return None
        features = {w for line in flags.splitlines() if line.startswith("Features") for w in
                    line.split(":", 1)[1].split()}  # fmt: skip
        return "Arm BF16" if "bf16" in features else None
    return None


def precision_choice(precision: str, device: torch.device, model: str | None = None):
    """The precision a run computes at, and why: (fp32 | bf16 | fp16, reason).

    CUDA: auto is bf16 where the GPU has it, else fp16. CPU: bf16 (autocast) only where the
    CPU computes it natively (cpu_bf16_support); auto picks it there for the models measured
    faster in bf16 (ModelInfo.cpu_bf16_faster), fp32 otherwise; fp16 is refused."""
    if device.type == "cuda":
        if precision != "auto":
            return precision, "asked for"
        if torch.cuda.is_bf16_supported():
            return "bf16", "auto: the GPU computes bf16"
        return "fp16", "auto: the GPU has no bf16"
    native = cpu_bf16_support()
    if precision == "fp16":
        raise EnetError(
            "--precision fp16 needs a CUDA device; on the CPU use fp32"
            + (" or bf16" if native else "")
        )
    if precision == "bf16":
        if native is None:
            raise EnetError(
                "--precision bf16: this CPU has no native bf16 arithmetic (neither AVX512-BF16 "
                "nor AMX, nor Arm's BF16), so it would be slower than fp32; use fp32"
            )
        return "bf16", f"asked for; the CPU has {native}"
    if precision == "fp32":
        return "fp32", "asked for"
    if native is None:
        return "fp32", "auto: the CPU has no native bf16"
    if model is not None and get_model_info(model).cpu_bf16_faster:
        return "bf16", f"auto: the CPU has {native} and {model}'s family trains faster in bf16"
    if model is not None and get_model_info(model).is_zoo:
        return "fp32", f"auto: {model} is not measured in bf16 on the CPU (--precision bf16 to try)"
    family = f"{model}'s family" if model else "the model"
    return "fp32", f"auto: {family} is not faster in bf16 on the CPU (measured)"


def resolve_precision(
    precision: str, device: torch.device, model: str | None = None, inference: bool = False
) -> str:
    """The precision to compute at (see precision_choice). `inference` (eval, predict: the
    precision comes from the checkpoint's recipe, which may have trained elsewhere): fp32
    where the recipe's precision cannot run here, instead of an error."""
    try:
        return precision_choice(precision, device, model)[0]
    except EnetError:
        if inference:
            return "fp32"
        raise


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The dtype torch.autocast runs at for a resolved precision (None: no autocast)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def autocast(device: torch.device, precision: str):
    """The autocast context of a forward pass at `precision` (bf16 / fp16); fp32: none. Training,
    evaluation, predict and bench all enter it here."""
    dtype = autocast_dtype(precision)
    return torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None)


def use_fast_cuda_kernels(device: torch.device) -> None:
    """On CUDA: cuDNN picks the fastest convolution algorithms for the (fixed) input shapes,
    and fp32 matrix products may use TF32 (bf16 and fp16 runs are unaffected)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.set_float32_matmul_precision("high")


def use_threads(threads: int | None) -> None:
    """train.threads: torch's intra-op threads in this process (None: leave torch's default)."""
    if threads is not None:
        torch.set_num_threads(threads)


def resolve_resolution(cfg: Config) -> int:
    """Training resolution: data.res, else the model's own."""
    return cfg.data.res or get_model_info(cfg.model.name).resolution


def resolve_crop_pct(cfg: Config) -> float:
    """Evaluation centre crop: data.crop_pct, else the model's own (a zoo's metadata, or 0.875)."""
    return cfg.data.crop_pct or get_model_info(cfg.model.name).crop_pct


def resolve_normalization(cfg: Config) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Input normalisation (mean, std; RGB, 0-1 scale): data.mean and data.std, else the
    model's own (a zoo's metadata, as timm's train.py takes it), else ImageNet's."""
    info = get_model_info(cfg.model.name)
    mean = cfg.data.mean or info.mean or IMAGENET_MEAN
    std = cfg.data.std or info.std or IMAGENET_STD
    return tuple(mean), tuple(std)


def zoo_defaults_note(cfg: Config) -> str:
    """For the run's log: where a zoo model's resolution, crop and normalisation came from when
    the config leaves them unset (timm's pretrained_cfg, torchvision's weights' transforms,
    enet's). Normalisation is named where the zoo's differs from ImageNet's."""
    info = get_model_info(cfg.model.name)
    taken = ([] if cfg.data.res else ["resolution"]) + (
        [] if cfg.data.crop_pct else [f"crop {info.crop_pct}"]
    )
    for key, own, imagenet in (("mean", info.mean, IMAGENET_MEAN), ("std", info.std, IMAGENET_STD)):
        if not getattr(cfg.data, key) and own and tuple(own) != imagenet:
            taken.append(f"{key} {_short(own)}")
    if not info.is_zoo or not taken:
        return ""
    listed = " and ".join(taken) if len(taken) < 3 else f"{', '.join(taken[:-1])} and {taken[-1]}"
    return f" ({listed} from {info.defaults_from})"


def _short(values: tuple[float, ...]) -> str:
    return ",".join(f"{v:g}" for v in values)


def model_options(cfg: Config) -> dict:
    """create_model's keyword options from the config's model section; options it leaves unset
    (None) take the family's training defaults (`ModelInfo.train_defaults`: EfficientNet's
    short-budget recipe), the rest the builder's own; `model.kwargs` last, as given. A zoo
    model takes model.kwargs only (config validation refuses enet's own keys for it)."""
    m = cfg.model
    if get_model_info(m.name).is_zoo:
        return dict(m.kwargs)
    opts: dict = dict(get_model_info(m.name).train_defaults) | {"msd_samples": m.msd_samples}
    for option in ("dropout", "drop_connect_rate"):
        if getattr(m, option) is not None:
            opts[option] = getattr(m, option)
    for flag in ("zero_init_residual", "fan_in_head", "tf_init", "sa"):
        value = getattr(m, flag)
        if value or (value is False and flag in opts):  # false only turns a default off
            opts[flag] = bool(value)
    if m.act is not None:
        opts["act"] = m.act
    if m.pool != "max":
        opts["pool"] = m.pool
    return opts | m.kwargs
