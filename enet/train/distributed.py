"""Distributed set-up from torchrun's environment: rank, world size, device, explicit handles.

torchrun (torch.distributed.run) sets RANK, WORLD_SIZE and LOCAL_RANK; without them this is a
single process. nccl on CUDA, gloo on the CPU. Only the main rank prints and writes.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ..errors import EnetError


@dataclass(frozen=True)
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise EnetError("--device cuda: no CUDA device is available; use --device cpu")
        return torch.device("cuda", local_rank if name == "cuda" else int(name.split(":")[1]))
    return torch.device("cpu")


def setup(device_name: str, timeout_minutes: float = 10.0) -> DistEnv:
    """Join the process group if torchrun started us; pick the device."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_name, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(
            backend="nccl" if device.type == "cuda" else "gloo",
            timeout=datetime.timedelta(minutes=timeout_minutes),  # a dead peer ends the job
            **({"device_id": device} if device.type == "cuda" else {}),
        )
    return DistEnv(rank, world_size, local_rank, device)


def cleanup() -> None:
    """After a run every rank finished: leave the process group together."""
    if dist.is_initialized():
        dist.destroy_process_group()


def abort() -> None:
    """After a failure on this rank: drop the process group without waiting for the peers
    (torch's private `_abort_process_group` where it exists; otherwise leave it to the
    process's exit), so the rank exits at once and torchrun stops the job."""
    if not dist.is_initialized():
        return
    abort_group = getattr(dist.distributed_c10d, "_abort_process_group", None)
    if abort_group is not None:
        try:
            abort_group()
        except Exception:  # noqa: BLE001 (a best effort on the way out)
            pass


def all_reduce_sum(values: list[float], env: DistEnv) -> list[float]:
    """Sum a few numbers over ranks (float64 on the CPU for gloo, on the device for nccl)."""
    if not env.distributed:
        return values
    device = env.device if env.device.type == "cuda" else torch.device("cpu")
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def gather(obj, env) -> list:
    gathered = [None] * env.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def sync_buffers(model: nn.Module, env) -> None:
    """Give every rank the main rank's buffers (BatchNorm statistics).

    DDP broadcasts them at the start of each forward pass, so after the last training step
    each rank holds statistics updated from its own batch: evaluating with the main rank's
    makes every shard use the weights the checkpoint saves.
    """
    if not env.distributed:
        return
    for buffer in model.buffers():
        dist.broadcast(buffer, src=0)


def ranks_in_sync(model: nn.Module, env) -> bool:
    """Do all ranks hold bit-identical weights? (DDP should guarantee it; this checks.)"""
    if not env.distributed:
        return True
    digest = hashlib.sha1()
    for tensor in model.state_dict().values():
        digest.update(tensor.detach().cpu().reshape(-1).view(torch.uint8).numpy().tobytes())
    digests = gather(digest.hexdigest(), env)
    return len(set(digests)) == 1
