"""The DALI backend: GPU ("mixed") decoding and GPU operators on CUDA, CPU operators otherwise.

The file order is enet's (common.TrainPlan), fed through an external source whose callable takes
DALI's BatchInfo: DALI checkpoints such a source together with every random generator of the
pipeline, so `state_dict()` captures the exact position and random state, and a resumed run
produces the same batches. The pipeline runs on the consuming thread (DALI prefetches on its own
threads), so a checkpoint always describes what training has consumed, never more. On CUDA each
run's outputs are bound to torch's current stream (`run(stream)`): no host synchronisation, and
the files are read by DALI's Python worker processes (the external source's parallel mode), not
by the training thread that also launches the model's kernels; each batch's size comes from a
second, serial source in this process, where the training loop can still change the run's length.

RandAugment: on the GPU, DALI's own inside the pipeline; on the CPU, enet's batched one after it
(DALI's CPU RandAugment is slower than torchvision's DataLoader; see README, Performance).
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator

import numpy as np
import torch

from ..errors import EnetError
from .common import (
    EvalLoaderBase,
    Normalizer,
    Resolutions,
    TrainLoaderBase,
    TrainPlan,
    seed_of,
)
from .datasets import Split
from .randaugment import rand_augment
from .shards import read_encoded


def _read(path: str) -> np.ndarray:
    return read_encoded(path)  # a file, or a shard member (data/shards.py)


@contextlib.contextmanager
def _one_thread():
    """Run torch ops on one intra-op thread for a moment (measured faster beside DALI's own
    threads than two competing ones); this thread is the only one driving torch meanwhile."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _torch_stream(device: torch.device):
    """CUDA: torch's current stream, to which DALI binds a run's outputs (ready there, without
    waiting on the host); None on the CPU (DALI then returns finished outputs)."""
    return torch.cuda.current_stream(device) if device.type == "cuda" else None


def _dali_error(err: Exception) -> EnetError:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return EnetError(
        f"DALI failed while reading the data ({first}); if a file is corrupt, run "
        "`enet data check DATA` (it records bad files, which loaders then skip) or use "
        "--loader torch"
    )


class _Outputs:
    """DALI outputs -> torch tensors (copied: DALI reuses its buffers on the next run)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def __call__(self, out) -> tuple[torch.Tensor, torch.Tensor]:
        images, labels = out[0].as_tensor(), out[1].as_tensor()
        if self.device.type == "cuda":
            from nvidia.dali.plugin.pytorch import feed_ndarray

            stream = torch.cuda.current_stream(self.device)
            img = torch.empty(images.shape(), dtype=torch.uint8, device=self.device)
            lab = torch.empty(labels.shape(), dtype=torch.int64, device=self.device)
            feed_ndarray(images, img, cuda_stream=stream)
            feed_ndarray(labels, lab, cuda_stream=stream)
        else:
            img = torch.from_dlpack(images).clone()
            lab = torch.from_dlpack(labels).clone()
        return img, lab.view(-1)  # (N, C, H, W), (N,)


class _Files:
    """The external source of the training files: batch `iteration` of a pipeline that starts at
    global batch `offset` -> its encoded files and labels. Picklable, so that DALI's worker
    processes (started with spawn: fork is unsafe once CUDA is up) can call it."""

    def __init__(self, files: list[str], labels: np.ndarray, plan: TrainPlan, offset: int):
        self.files, self.labels, self.plan, self.offset = files, labels, plan, offset

    def __call__(self, info):
        epoch, b = divmod(self.offset + info.iteration, len(self.plan))
        idx = self.plan.epoch_indices(epoch)[b]
        return [_read(self.files[i]) for i in idx], [self.labels[i : i + 1] for i in idx]


class DaliTrainLoader(TrainLoaderBase):
    backend = "dali"

    def __init__(
        self,
        split: Split,
        plan: TrainPlan,
        sizes: Resolutions,
        *,
        min_scale: float,
        randaugment: tuple[int, int],
        device: torch.device,
        normalize: Normalizer,
        workers: int,
        randaugment_impl: str = "auto",
        crop: str = "random-resized",
    ) -> None:
        super().__init__(plan, sizes)
        self.crop = crop
        self.files = split.files
        self.labels = np.asarray(split.labels, dtype=np.int64)
        self.min_scale, self.device = min_scale, device
        self.workers = max(1, workers)  # DALI threads (0 workers means none for torch only)
        self.gpu = device.type == "cuda"
        # files read by DALI's worker processes: on CUDA, where the training thread has kernels
        # to launch; on the CPU serially (measured no faster: decoding fills the cores)
        self.parallel_read = self.gpu
        use_ra = randaugment[0] > 0
        in_dali = randaugment_impl == "dali" or (randaugment_impl == "auto" and self.gpu)
        self.dali_randaugment = tuple(randaugment) if (use_ra and in_dali) else None
        self.torch_randaugment = tuple(randaugment) if (use_ra and not in_dali) else None
        self.normalize = normalize
        self.outputs = _Outputs(device)
        self._pipe = None
        self._offset = 0  # global batch index of the pipeline's first batch
        self._runs = 0  # batches taken from the pipeline since it was built

    def _sizes(self, info):
        """The batch's size, per sample: progressive resizing changes it from batch to batch
        without rebuilding the pipeline."""
        size = np.full(2, self.sizes.at(self._offset + info.iteration), dtype=np.float32)
        return [size] * self.plan.batch_size

    def _build(self, offset: int, checkpoint: bytes | None = None) -> None:
        from .dali_pipelines import quiet_dali_deprecations, train_pipeline

        self._offset, self._runs = offset, 0
        with quiet_dali_deprecations():
            pipe = train_pipeline(
                files=_Files(self.files, self.labels, self.plan, offset),
                sizes=self._sizes,
                parallel=self.parallel_read,
                min_scale=self.min_scale,
                gpu=self.gpu,
                randaugment=self.dali_randaugment,
                crop=self.crop,
                batch_size=self.plan.batch_size,
                num_threads=self.workers,
                device_id=(self.device.index or 0) if self.gpu else None,
                seed=seed_of(self.plan.seed, self.plan.rank, 17) % (2**31),
                # depth 4: room for DALI to run ahead while the consumer augments and normalises
                prefetch_queue_depth=4,
                enable_checkpointing=True,
                checkpoint=checkpoint,
                **(
                    dict(py_num_workers=self.workers, py_start_method="spawn")
                    if self.parallel_read
                    else {}
                ),
            )
            try:
                pipe.build()
            except Exception as err:  # noqa: BLE001 (DALI raises plain RuntimeErrors)
                if self.parallel_read and "Workers initialization failed" in str(err):
                    raise EnetError(
                        "DALI's file-reading processes failed to start (they start with spawn, "
                        "which imports the main module again: a script that uses enet needs an "
                        '`if __name__ == "__main__":` guard); or use --loader torch'
                    ) from None
                raise _dali_error(err) from None
        self._pipe = pipe

    def _iterate(self, epoch: int, start: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        step = epoch * len(self.plan) + start
        if self._pipe is None or self._offset + self._runs != step:
            self._build(step)
        for b in range(start, len(self.plan)):
            try:
                out = self._pipe.run(_torch_stream(self.device))
            except StopIteration:  # never: the source is endless
                raise
            except Exception as err:  # noqa: BLE001
                raise _dali_error(err) from None
            self._runs += 1
            images, labels = self.outputs(out)
            if self.torch_randaugment is not None:
                n, m = self.torch_randaugment
                gen = torch.Generator().manual_seed(self.plan.batch_seed(epoch, b))
                with _one_thread():  # DALI's threads already keep the cores busy
                    images = rand_augment(images, n, m, gen)
            yield self.normalize(images), labels

    def state_dict(self) -> dict:
        state = super().state_dict()
        if self._pipe is not None:
            # DALI's checkpoint: the external source's position and every RNG of the pipeline
            state["dali_checkpoint"] = self._pipe.checkpoint()
            state["dali_offset"] = self._offset
        return state

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        if state.get("dali_checkpoint") is not None:
            self._build(int(state["dali_offset"]), checkpoint=state["dali_checkpoint"])
            # the restored pipeline continues at the saved batch
            self._runs = self.epoch * len(self.plan) + self.batch - self._offset


class DaliEvalLoader(EvalLoaderBase):
    backend = "dali"

    def __init__(self, split: Split, res: int, **kw) -> None:
        super().__init__(split, res, **kw)
        self.workers = max(1, self.workers)  # DALI threads
        self.outputs = _Outputs(self.device)
        self._pipe = None

    def _source(self, info):
        if info.iteration >= len(self.batches):
            raise StopIteration
        idx = self.batches[info.iteration]
        return [_read(self.files[i]) for i in idx], [self.labels[i : i + 1] for i in idx]

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        if not self.batches:
            return
        if self._pipe is None:
            from .dali_pipelines import eval_pipeline

            gpu = self.device.type == "cuda"
            self._pipe = eval_pipeline(
                source=self._source,
                res=self.res,
                resize_to=self.resize_to,
                gpu=gpu,
                batch_size=self.batch_size,
                num_threads=self.workers,
                device_id=(self.device.index or 0) if gpu else None,
                prefetch_queue_depth=2,
            )
            try:
                self._pipe.build()
            except Exception as err:  # noqa: BLE001
                raise _dali_error(err) from None
        for b in itertools.count():
            try:
                out = self._pipe.run(_torch_stream(self.device))
            except StopIteration:
                self._pipe.reset()
                return
            except Exception as err:  # noqa: BLE001
                raise _dali_error(err) from None
            images, labels = self.outputs(out)
            self.current = list(self.batches[b])
            yield self.normalize(images), labels
