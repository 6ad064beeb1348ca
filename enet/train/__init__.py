"""Training: `loop.fit(cfg)` runs one training job; `launch` starts several ranks with torchrun.

The package imports nothing itself, so that importing one of its modules (a checkpoint reader,
the device set-up) does not import the training loop.
"""
