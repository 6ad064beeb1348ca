"""Stop signals: the loop saves at the next step boundary and exits with 128 + the signal."""

from __future__ import annotations

import signal


class StopSignals:
    """SIGTERM / SIGINT / SIGUSR1 set a flag; the loop saves at the next step boundary and
    exits with 128 + the signal: 143, 130, or 138 for SIGUSR1, which batch schedulers (SLURM's
    `--signal`) send before a time limit: "saved, requeue me" (scripts/slurm/train.sbatch)."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous = {}

    def __enter__(self) -> StopSignals:
        for sig in self.SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: stop now
        self.received = signum

    def __exit__(self, *exc) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


class Stopped(Exception):
    def __init__(self, signum: int, message: str) -> None:
        super().__init__(message)
        self.signum = signum
