"""Run configuration: frozen, typed dataclasses per section, YAML recipes, --set overrides.

Precedence: defaults < --config FILE < named flags (--model, --epochs, ...) < --set key=value.
Every YAML key maps to a field; an unknown key, a wrong type or an impossible value is an
EnetError naming the key (the CLI prints it on one line and exits 2).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from .choices import (
    ACTIVATIONS,
    CROPS,
    LOADERS,
    OPTIMIZERS,
    POOLS,
    PRECISIONS,
    SCHEDULES,
    TRACKERS,
)
from .choices import one_of as choices_text
from .data.datasets import NAMED_DATASETS, is_data_source
from .errors import EnetError
from .models import get_model_info

# The choices, named once: the fields below, their validation, the builders and the CLI's help
# all read them from these literals.
Activation = Literal[ACTIVATIONS]
Pool = Literal[POOLS]
Loader = Literal[LOADERS]
Crop = Literal[CROPS]
Optimizer = Literal[OPTIMIZERS]
Schedule = Literal[SCHEDULES]
Precision = Literal[PRECISIONS]
TrackerName = Literal[TRACKERS]


def choices(literal) -> tuple[str, ...]:
    """The values a Literal allows, e.g. choices(Loader) == ("auto", "dali", "torch")."""
    return typing.get_args(literal)


def one_of(literal) -> str:
    """'a, b or c' for messages and help texts."""
    return choices_text(choices(literal))


@dataclass(frozen=True)
class ModelConfig:
    name: str = "efficientnet_b0"
    """Registry name (`enet models` lists them), or a zoo's model: torchvision:NAME, timm:NAME
    (`enet models --zoo torchvision|timm`)."""
    dropout: float | None = None
    """Dropout before the classifier; None: the family's training default (EfficientNet 0, its
    short-budget recipe; the paper's 0.2-0.5 for long runs: configs/efficientnet_b0_paper.yaml)."""
    drop_connect_rate: float | None = None
    """EfficientNet drop-connect: block i of n gets rate * i / n; None: the family's training
    default, 0 (the paper's 0.2 for long runs)."""
    msd_samples: int = 1
    """Multi-Sample Dropout masks in the head (1: a plain head)."""
    zero_init_residual: bool | None = None
    """EfficientNet: each residual block's last BatchNorm starts at zero (XResNet always does);
    None: the family's training default, on."""
    tf_init: bool = False
    """EfficientNet: the TF reference's (and timm's) initialisation: a depthwise conv's fan-out
    is k*k (one filter's outputs), not torchvision's out_channels*k*k."""
    fan_in_head: bool | None = None
    """EfficientNet: the classifier's weights uniform in +-1/sqrt(in_features) (nn.Linear's
    default) instead of torchvision's +-1/sqrt(num_classes), built for 1000 classes; None: the
    family's training default, on."""
    act: Activation | None = None
    """XResNet activation: relu, silu or mish; None: relu."""
    sa: bool = False
    """XResNet: fastai's simple self-attention in the first stage's last block."""
    pool: Pool = "max"
    """XResNet stem pooling: max; maxblur (anti-aliased: 2x2 max stride 1, then 3x3 blur stride
    2, today's kornia); maxblur-pyr (kornia <= 0.4's: 3x3 max stride 1, 5x5 blur, 2x downsample)."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments for the model's constructor, passed as they are: a zoo model's own
    options (timm's `drop_path_rate`, `drop_rate`; torchvision's `dropout`, ...) or an enet
    model's (`enet models` lists them). `--set model.kwargs.KEY=VALUE` adds one."""


@dataclass(frozen=True)
class DataConfig:
    data: str = "mini"
    """A folder with train/ and val/ (or only class folders, with val_pct), a label file (.csv,
    .tsv: path, label[, split]), or a name: mini, imagenette, imagenette-320, imagewoof, ..."""
    val_pct: float | None = None
    """Data without a validation split: hold out this fraction of each class (0-1), chosen by
    split_seed: the same images on every rank, resume and `enet eval` of the run."""
    split_seed: int = 0
    """The held-out split's seed (not train.seed: a comparison's seeds share one split)."""
    res: int | None = None
    """Training resolution, pixels; None: the model's own (efficientnet_b3: 300, xresnet: 224)."""
    eval_res: int | None = None
    """Evaluation resolution, pixels; None: the training resolution."""
    loader: Loader = "auto"
    """auto (DALI if it works, else torch), dali or torch."""
    randaugment_n: int = 0
    """RandAugment operations per image (0: off; the short-budget recipes leave it off)."""
    randaugment_m: int = 9
    """RandAugment magnitude bin, 0-30 (torchvision's 31-bin scale)."""
    crop: Crop = "random-resized"
    """Training crop: random-resized (area min_scale..1, aspect 3/4..4/3), resize (the whole
    image squashed to res x res) or square (the largest square at a random place, resized to
    res x res: fastai's `Resize`, whose default ResizeMethod.Crop it is; on square images
    resize and square are the same). Evaluation takes the centre square with crop_pct 1.0,
    as fastai's `Resize` does on validation."""
    min_scale: float = 0.35
    """Smallest random-resized-crop area, as a fraction of the image (fastai's 0.35; the
    ImageNet papers' 0.08 suits long runs)."""
    crop_pct: float | None = None
    """Evaluation centre crop: resize the shorter side to eval_res / crop_pct, then crop; None:
    the model's own (a zoo's metadata where it has one, else 0.875)."""
    mean: tuple[float, ...] = ()
    """Input normalisation: per-channel mean, RGB on the 0-1 scale (e.g. 0.5,0.5,0.5); empty:
    the model's own (a zoo's metadata where it has one, else ImageNet's 0.485,0.456,0.406)."""
    std: tuple[float, ...] = ()
    """Input normalisation: per-channel std, RGB on the 0-1 scale; empty: the model's own (a
    zoo's metadata where it has one, else ImageNet's 0.229,0.224,0.225)."""
    workers: int | None = None
    """Loader worker processes (torch) or threads (DALI); None: the CPU count, at most 8."""
    mixup_alpha: float = 0.0
    """MixUp on whole batches on the training device (torchvision's v2.MixUp): Beta(alpha,
    alpha) weights, 0: off (helps long runs; the short recipes leave it off)."""
    cutmix_alpha: float = 0.0
    """CutMix (torchvision's v2.CutMix), 0: off; with mixup_alpha too, one of them per batch."""
    erase_p: float = 0.0
    """Random erasing (torchvision's v2.RandomErasing, noise-filled): each image's chance."""
    min_res: int = 0
    """Progressive resizing: train at this resolution first (0: off), rising to res in steps
    of 32 px between the fractions ramp_start and ramp_end of the run's steps."""
    ramp_start: float = 0.25
    """Progressive resizing: the fraction of the run's steps where the size starts rising."""
    ramp_end: float = 0.75
    """Progressive resizing: the fraction of the run's steps from which the size is res."""


@dataclass(frozen=True)
class OptimConfig:
    # The defaults are the short-budget recipe both families' configs/ recipes share (fastai's
    # Imagenette recipe): without --config a run trains instead of diverging.
    name: Optimizer = "ranger"
    """sgd (Nesterov momentum), adamw, rmsprop-tf, radam, or ranger (RAdam + Lookahead)."""
    lr: float = 0.008
    """Peak learning rate, for the global batch (batch_size x accumulation x ranks)."""
    weight_decay: float = 0.01
    """Weight decay; never applied to BatchNorm weights or biases."""
    momentum: float = 0.95
    """SGD and RMSprop momentum; Adam-style beta1 for adamw, radam and ranger."""
    beta2: float = 0.99
    """Second moment decay (adam-style) or RMSprop's decay (rmsprop-tf: 0.9 in the paper)."""
    eps: float = 1e-6
    """Optimiser epsilon (rmsprop-tf: 1e-3 in the paper, inside the square root)."""
    label_smoothing: float = 0.1
    """Cross-entropy label smoothing."""
    grad_clip: float | None = None
    """Clip the gradient norm to this value; None: no clipping."""


@dataclass(frozen=True)
class ScheduleConfig:
    name: Schedule = "flat-cos"
    """one-cycle (fastai's), flat-cos, or cosine (linear warm-up, then cosine)."""
    warmup_pct: float = 0.25
    """one-cycle: share of steps rising from lr / div to lr; cosine: share of linear warm-up."""
    flat_pct: float = 0.72
    """flat-cos: share of steps at the full lr before the cosine decay."""
    div: float = 25.0
    """one-cycle: the start lr is lr / div."""
    div_final: float = 1e5
    """one-cycle and flat-cos: the last lr is lr / div_final."""


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 5
    """Epochs to train (a pass over the training split each)."""
    minutes: float | None = None
    """Wall-clock budget instead of fixed steps: the schedule is fitted to end on time."""
    batch_size: int = 64
    """Images per step on each rank."""
    accum_steps: int = 1
    """Micro-batches accumulated per optimiser step."""
    seed: int = 0
    """Seed of the model's initialisation, the data order and every augmentation."""
    device: str = "auto"
    """auto (CUDA if present, else CPU), cpu or cuda."""
    precision: Precision = "auto"
    """auto, fp32, bf16 or fp16. auto: on CUDA bf16 where the GPU has it, else fp16; on a CPU
    with native bf16 (AVX512-BF16, AMX, Arm BF16) bf16 for the model families measured faster
    in it (XResNet), fp32 otherwise. bf16 on the CPU needs native bf16; fp16 needs CUDA."""
    threads: int | None = None
    """torch's intra-op threads in each process (None: torch's default, one per core, or the
    cores' share per rank under --nproc-per-node). Lower it when another job shares the cores:
    competing threads can make each step several times slower."""
    channels_last: bool = True
    """NHWC memory format (faster with cuDNN, and with oneDNN on the CPU: 1.4x for B0 here)."""
    compile: bool = False
    """Run the model through torch.compile."""
    retain_cpu_memory: bool = True
    """On the CPU: glibc's malloc keeps freed memory for reuse instead of an mmap per large
    tensor (1.2-1.5x faster steps here; the process keeps its peak heap). enet/runtime.py."""
    init_from: str | None = None
    """Start from these weights: an enet checkpoint or a state dict (enet's or torchvision's
    layout); a classifier for other classes is replaced. None: random initialisation."""
    pretrained: bool = False
    """Start from torchvision's ImageNet weights (EfficientNet B0-B7)."""
    ema_decay: float | None = None
    """Exponential moving average of the weights, per optimiser step (e.g. 0.999); None: off."""
    ema_warmup: bool = False
    """EMA warm-up (timm's ModelEmaV3): the decay rises as 1 - step^-0.75 up to ema_decay,
    so the average starts from trained weights: what makes an EMA help short runs."""
    ema_every: int = 1
    """Update the EMA every this many optimiser steps (with decay^ema_every: the same horizon)."""
    grad_checkpointing: bool = False
    """Recompute each stage's activations in the backward pass instead of keeping them: less
    memory (EfficientNet B4-B7 at their own resolutions), one more forward per step."""
    sync_bn: bool = False
    """SyncBatchNorm across ranks."""
    save_every_steps: int | None = None
    """Also write checkpoints/last.pt every this many optimiser steps (always at epoch ends)."""
    log_every_steps: int = 10
    """Plain-text progress line every this many steps (when the output is not a terminal)."""


@dataclass(frozen=True)
class RunConfig:
    out: str | None = None
    """Run folder; None: runs/<model>-<date>-<time>."""
    resume: bool = False
    """Continue from OUT/checkpoints/last.pt."""
    overwrite: bool = False
    """Allow starting a fresh run in a non-empty OUT."""
    tensorboard: bool = False
    """Also write the scalars (losses, lr, top-1/5, images/s, loader wait) as TensorBoard
    events under OUT/tensorboard (the tensorboard package: pip install 'enet[tensorboard]');
    the same as naming tensorboard in run.trackers."""
    trackers: tuple[TrackerName, ...] = ()
    """Experiment trackers the run also logs to (enet/train/trackers.py): tensorboard, mlflow
    (MLFLOW_TRACKING_URI, else ./mlflow.db, SQLite), wandb (WANDB_MODE=offline works without a
    network). A list, or comma-separated on the command line (--track mlflow,wandb)."""
    tags: tuple[str, ...] = ()
    """key=value tags for the trackers' run (compare-baselines adds comparison, entry, seed)."""
    log_checkpoints: bool = True
    """Trackers also store the best checkpoint as an artifact (summary.json always)."""


@dataclass(frozen=True)
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        """Plain data (tuples as lists): YAML, JSON and checkpoints take it as it is."""
        return dataclasses.asdict(self, dict_factory=_plain_dict)


def _plain_dict(items: list[tuple[str, Any]]) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in items}


_SECTION_TYPES = {
    "model": ModelConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
    "train": TrainConfig,
    "run": RunConfig,
}


# ---------------------------------------------------------------------------------------------
# building a config


def _type_hints(cls) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(key: str, value: Any, annotation: Any) -> Any:
    """Check `value` against a field's annotation (int, float, str, bool, X | None, and
    tuple[X, ...]: a list, or a comma-separated string)."""
    if typing.get_origin(annotation) is dict:
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise EnetError(f"{key} must be a mapping of names to values, got {value!r}")
        return dict(value)
    if typing.get_origin(annotation) is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise EnetError(f"{key} must be a list, got {value!r}")
        element = typing.get_args(annotation)[0]
        items = [i.strip() if isinstance(i, str) else i for i in items]
        return tuple(_coerce(key, item, element) for item in items if item != "")
    options = (
        typing.get_args(annotation)
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union
        else (annotation,)
    )
    literal = next((t for t in options if typing.get_origin(t) is Literal), None)
    if literal is not None and value is not None:
        if value not in choices(literal):
            nullable = " (or null)" if type(None) in options else ""
            raise EnetError(f"{key} must be {one_of(literal)}{nullable}, got {value!r}")
        return value
    if value is None:
        if type(None) in options:
            return None
        raise EnetError(f"{key} cannot be null")
    for t in options:
        if t is type(None):
            continue
        if t is bool and isinstance(value, bool):
            return value
        if t is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if t is float and isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if t is float and isinstance(value, str):
            # YAML 1.1 reads 5e-5 (no dot) as a string; take it as the number it means
            try:
                return float(value)
            except ValueError:
                pass
        if t is str and isinstance(value, str):
            return value
    names = " or ".join("null" if t is type(None) else t.__name__ for t in options)
    raise EnetError(f"{key} must be {names}, got {value!r}")


def _apply(cfg: Config, section: str, values: dict, origin: str) -> Config:
    if section not in _SECTION_TYPES:
        raise EnetError(
            f"{origin}: unknown section {section!r}; sections: {', '.join(_SECTION_TYPES)}"
        )
    if not isinstance(values, dict):
        raise EnetError(f"{origin}: section {section!r} must be a mapping of keys to values")
    cls = _SECTION_TYPES[section]
    hints = _type_hints(cls)
    changes = {}
    for key, value in values.items():
        head, dot, sub = key.partition(".")
        if dot and typing.get_origin(hints.get(head)) is dict:  # model.kwargs.drop_rate=0.1
            current = changes.get(head, getattr(getattr(cfg, section), head))
            key, value = head, {**current, sub: value}
        if key not in hints:
            raise EnetError(
                f"{origin}: unknown key {section}.{key}; {section} keys: {', '.join(hints)}"
            )
        changes[key] = _coerce(f"{section}.{key}", value, hints[key])
    return replace(cfg, **{section: replace(getattr(cfg, section), **changes)})


def parse_yaml(text: str, origin: str):
    """YAML -> data; a syntax error names its line and column (1-based)."""
    try:
        return yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise EnetError(f"{origin}: not valid YAML{where}: {problem}") from None


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise EnetError(f"--config {path}: {err.strerror}") from None
    data = parse_yaml(text, f"--config {path}")
    if not isinstance(data, dict):
        raise EnetError(f"--config {path}: expected a mapping of sections")
    return data


def build_config(
    config_file: str | Path | None = None,
    flags: dict[str, Any] | None = None,
    overrides: list[str] | None = None,
    base: Config | None = None,
) -> Config:
    """defaults (or `base`) < config file < flags ({'train.epochs': 3, ...}) < --set overrides."""
    cfg = base or Config()
    if config_file is not None:
        for section, values in load_yaml(config_file).items():
            cfg = _apply(cfg, section, values, f"--config {config_file}")
    for dotted, value in (flags or {}).items():
        if value is None:
            continue
        section, key = dotted.split(".", 1)
        cfg = _apply(cfg, section, {key: value}, f"--{key.replace('_', '-')}")
    for item in overrides or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise EnetError(f"--set {item!r}: expected section.key=value (e.g. optim.lr=0.1)")
        dotted, raw = item.split("=", 1)
        section, key = dotted.strip().split(".", 1)
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw
        cfg = _apply(cfg, section, {key: value}, f"--set {dotted}")
    validate(cfg)
    return cfg


def config_from_dict(data: dict) -> Config:
    """A resolved config saved in a run folder or checkpoint -> Config."""
    cfg = Config()
    for section, values in data.items():
        cfg = _apply(cfg, section, values, "saved config")
    return cfg


# ---------------------------------------------------------------------------------------------
# validation: values that cannot work, named by their key


MIN_RES = 16  # pixels: below it the networks' strided stems leave nothing to pool


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise EnetError(message)


def check_res(res: int | None, name: str = "--res") -> None:
    """A resolution given to a command or a recipe: None (the default) or at least MIN_RES."""
    _check(res is None or res >= MIN_RES, f"{name} must be >= {MIN_RES} pixels, got {res}")


def validate(cfg: Config) -> None:
    m, d, o, s, t = cfg.model, cfg.data, cfg.optim, cfg.schedule, cfg.train
    try:
        info = get_model_info(m.name)
    except EnetError as err:
        raise EnetError(f"model.name: {err}") from None
    if info.is_zoo:
        _validate_zoo_model(m, t)
    family = info.family
    _check(
        m.dropout is None or 0 <= m.dropout < 1, f"model.dropout must be in [0, 1), got {m.dropout}"
    )
    _check(
        m.drop_connect_rate is None or 0 <= m.drop_connect_rate < 1,
        f"model.drop_connect_rate must be in [0, 1), got {m.drop_connect_rate}",
    )
    _check(
        m.drop_connect_rate is None or family == "efficientnet",
        f"model.drop_connect_rate applies to EfficientNet only, not {m.name}",
    )
    _check(
        not m.zero_init_residual or family == "efficientnet",
        f"model.zero_init_residual applies to EfficientNet only ({m.name} always zero-inits)",
    )
    for init in ("tf_init", "fan_in_head"):
        _check(
            not getattr(m, init) or family == "efficientnet",
            f"model.{init} applies to EfficientNet only, not {m.name}",
        )
    _check(m.act is None or family == "xresnet", f"model.act applies to XResNet only, not {m.name}")
    _check(not m.sa or family == "xresnet", f"model.sa applies to XResNet only, not {m.name}")
    _check(
        m.pool == "max" or family == "xresnet",
        f"model.pool applies to XResNet only, not {m.name}",
    )
    _check(m.msd_samples >= 1, f"model.msd_samples must be >= 1, got {m.msd_samples}")
    _validate_data(d)
    _check(o.lr > 0, f"optim.lr must be > 0, got {o.lr}")
    _check(o.weight_decay >= 0, f"optim.weight_decay must be >= 0, got {o.weight_decay}")
    _check(0 <= o.momentum < 1, f"optim.momentum must be in [0, 1), got {o.momentum}")
    _check(0 < o.beta2 < 1, f"optim.beta2 must be in (0, 1), got {o.beta2}")
    _check(o.eps > 0, f"optim.eps must be > 0, got {o.eps}")
    _check(
        0 <= o.label_smoothing < 1,
        f"optim.label_smoothing must be in [0, 1), got {o.label_smoothing}",
    )
    _check(
        o.grad_clip is None or o.grad_clip > 0, f"optim.grad_clip must be > 0, got {o.grad_clip}"
    )
    _check(0 <= s.warmup_pct < 1, f"schedule.warmup_pct must be in [0, 1), got {s.warmup_pct}")
    _check(0 <= s.flat_pct < 1, f"schedule.flat_pct must be in [0, 1), got {s.flat_pct}")
    _check(s.div >= 1 and s.div_final >= 1, "schedule.div and schedule.div_final must be >= 1")
    _check(t.epochs >= 1, f"train.epochs must be >= 1, got {t.epochs}")
    _check(t.minutes is None or t.minutes > 0, f"train.minutes must be > 0, got {t.minutes}")
    _check(t.batch_size >= 1, f"train.batch_size must be >= 1, got {t.batch_size}")
    _check(t.threads is None or t.threads >= 1, f"train.threads must be >= 1, got {t.threads}")
    _check(t.accum_steps >= 1, f"train.accum_steps must be >= 1, got {t.accum_steps}")
    _check(
        t.device in ("auto", "cpu", "cuda") or t.device.startswith("cuda:"),
        f"train.device must be auto, cpu or cuda, got {t.device!r}",
    )
    _check(
        t.ema_decay is None or 0 < t.ema_decay < 1,
        f"train.ema_decay must be in (0, 1), got {t.ema_decay}",
    )
    _check(t.ema_every >= 1, f"train.ema_every must be >= 1, got {t.ema_every}")
    _check(
        t.save_every_steps is None or t.save_every_steps >= 1,
        f"train.save_every_steps must be >= 1, got {t.save_every_steps}",
    )
    _check(t.log_every_steps >= 1, f"train.log_every_steps must be >= 1, got {t.log_every_steps}")
    bad_tag = next((tag for tag in cfg.run.tags if "=" not in tag.strip("=")), None)
    _check(bad_tag is None, f"run.tags must be key=value, got {bad_tag!r}")


def _validate_zoo_model(m: ModelConfig, t: TrainConfig) -> None:
    """A zoo model takes its options through model.kwargs; enet's own model keys are refused."""
    own = {
        "dropout": m.dropout is not None,
        "drop_connect_rate": m.drop_connect_rate is not None,
        "zero_init_residual": m.zero_init_residual is not None,
        "fan_in_head": m.fan_in_head is not None,
        "tf_init": m.tf_init,
        "act": m.act is not None,
        "sa": m.sa,
        "pool": m.pool != "max",
        "msd_samples": m.msd_samples != 1,
    }
    given = next((key for key, set_ in own.items() if set_), None)
    _check(
        given is None,
        f"model.{given} applies to enet's own models, not {m.name}; pass the model's own "
        f"options as model.kwargs (e.g. --set model.kwargs.drop_rate=0.2)",
    )
    _check(
        not t.grad_checkpointing or m.name.startswith("timm:"),
        f"train.grad_checkpointing: {m.name} does not support it (enet's and timm's models do)",
    )


def _validate_data(d: DataConfig) -> None:
    _check(
        is_data_source(d.data),
        f"data.data (--data): {d.data!r} is no folder, no label file and no dataset name "
        f"(mini, {', '.join(NAMED_DATASETS)})",
    )
    _check(
        d.val_pct is None or 0 < d.val_pct < 1,
        f"data.val_pct must be in (0, 1), got {d.val_pct}",
    )
    check_res(d.res, "data.res")
    check_res(d.eval_res, "data.eval_res")
    _check(d.randaugment_n >= 0, f"data.randaugment_n must be >= 0, got {d.randaugment_n}")
    _check(
        0 <= d.randaugment_m <= 30, f"data.randaugment_m must be in 0..30, got {d.randaugment_m}"
    )
    _check(0 < d.min_scale <= 1, f"data.min_scale must be in (0, 1], got {d.min_scale}")
    _check(
        d.crop_pct is None or 0 < d.crop_pct <= 1,
        f"data.crop_pct must be in (0, 1], got {d.crop_pct}",
    )
    _check(d.workers is None or d.workers >= 0, f"data.workers must be >= 0, got {d.workers}")
    for key in ("mean", "std"):
        values = getattr(d, key)
        _check(
            len(values) in (0, 3) and (key == "mean" or all(v > 0 for v in values)),
            f"data.{key} must be empty (the model's own) or three values (RGB, 0-1 scale"
            f"{', above 0' if key == 'std' else ''}), got {list(values)}",
        )
    for key in ("mixup_alpha", "cutmix_alpha"):
        _check(getattr(d, key) >= 0, f"data.{key} must be >= 0, got {getattr(d, key)}")
    _check(0 <= d.erase_p <= 1, f"data.erase_p must be in [0, 1], got {d.erase_p}")
    _check(
        d.min_res == 0 or d.min_res >= MIN_RES,
        f"data.min_res must be 0 (off) or >= {MIN_RES}, got {d.min_res}",
    )
    _check(
        0 <= d.ramp_start <= d.ramp_end <= 1,
        f"data.ramp_start and ramp_end need 0 <= start <= end <= 1, got {d.ramp_start}, "
        f"{d.ramp_end}",
    )


def to_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
