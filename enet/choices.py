"""Every named choice enet offers, listed once: the config's typed fields, its validation, the
model and data builders and the command line's help all read them from here. No imports, so
the command line can use it without loading torch."""

from __future__ import annotations

ACTIVATIONS = ("relu", "silu", "mish")
POOLS = ("max", "maxblur", "maxblur-pyr")
LOADERS = ("auto", "dali", "torch")
CROPS = ("random-resized", "resize", "square")
OPTIMIZERS = ("sgd", "adamw", "rmsprop-tf", "radam", "ranger")
SCHEDULES = ("one-cycle", "flat-cos", "cosine")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
EXPORT_FORMATS = ("onnx", "exported", "torchscript")
TRACKERS = ("tensorboard", "mlflow", "wandb")


def one_of(values: tuple[str, ...]) -> str:
    """'a, b or c', for messages and help texts."""
    return ", ".join(values[:-1]) + " or " + values[-1] if len(values) > 1 else values[0]
