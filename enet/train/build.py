"""What a run trains: its loaders and its model, optimiser, grad scaler and EMA, built the same
way by `enet train` and `enet lr-find`."""

from __future__ import annotations

import random

import numpy as np
import torch
from torch import nn

from ..config import Config
from ..data import build_loaders
from ..models import create_model, set_grad_checkpointing
from ..settings import model_options, resolve_crop_pct, resolve_normalization
from . import distributed
from .ema import EMA
from .init import initialise
from .optim import build_optimizer


def build_data(cfg: Config, env: distributed.DistEnv, res: int, left_out=None):
    """The run's loaders; a resumed run leaves out the files its start left out (`left_out`,
    from its checkpoint), so that files found bad since do not change its sample order."""
    d, t = cfg.data, cfg.train
    mean, std = resolve_normalization(cfg)
    return build_loaders(
        d.data,
        res,
        t.batch_size,
        eval_res=d.eval_res or res,
        loader=d.loader,
        device=env.device,
        randaugment=(d.randaugment_n, d.randaugment_m),
        min_scale=d.min_scale,
        crop=d.crop,
        crop_pct=resolve_crop_pct(cfg),
        rank=env.rank,
        world_size=env.world_size,
        seed=t.seed,
        workers=d.workers,
        channels_last=t.channels_last,
        mean=mean,
        std=std,
        min_res=d.min_res,
        ramp=(d.ramp_start, d.ramp_end),
        val_pct=d.val_pct,
        split_seed=d.split_seed,
        left_out=left_out,
    )


def build_trainable(cfg: Config, env: distributed.DistEnv, num_classes: int, precision: str):
    """Model, optimiser, grad scaler and EMA: the same initialisation on every rank."""
    t = cfg.train
    torch.manual_seed(t.seed)
    memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
    model = create_model(cfg.model.name, num_classes, **model_options(cfg))
    model.to(env.device, memory_format=memory_format)
    if t.sync_bn and env.distributed:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    set_grad_checkpointing(model, cfg.model.name, t.grad_checkpointing)
    init = initialise(model, cfg.model.name, num_classes, t.pretrained, t.init_from)
    ema = EMA(model, t.ema_decay, t.ema_warmup, t.ema_every) if t.ema_decay else None
    optimizer = build_optimizer(cfg.optim, model)
    scaler = torch.amp.GradScaler(env.device.type, enabled=precision == "fp16")
    # Dropout and drop-connect draw from the global generator: a stream of its own per rank.
    torch.manual_seed(t.seed * 1000 + 1 + env.rank)
    random.seed(t.seed + env.rank)
    np.random.seed(t.seed + env.rank)
    return model, optimizer, scaler, ema, init
