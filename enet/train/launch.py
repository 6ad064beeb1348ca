"""Several ranks through PyTorch's own elastic launcher (torch.distributed.run, i.e. torchrun).

`enet train --nproc-per-node N [--nnodes M --node-rank R --rdzv-endpoint HOST:PORT] ...` does
what `torchrun <launcher flags> -m enet train <the other flags>` does (and that command works
too). The launcher watches the ranks: when one dies it stops the others and the job fails,
so it never hangs.
"""

from __future__ import annotations

import os

from ..errors import EnetError

LAUNCHER_FLAGS = ("--nproc-per-node", "--nnodes", "--node-rank", "--rdzv-endpoint")


def launcher_requested(nproc_per_node: int, nnodes: int) -> bool:
    """True when this process should start ranks rather than be one (not already under torchrun)."""
    return (nproc_per_node > 1 or nnodes > 1) and "LOCAL_RANK" not in os.environ


def strip_launcher_flags(argv: list[str]) -> list[str]:
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        name = arg.split("=", 1)[0]
        if name in LAUNCHER_FLAGS:
            skip = "=" not in arg
            continue
        out.append(arg)
    return out


def launch(
    argv: list[str],
    nproc_per_node: int,
    nnodes: int = 1,
    node_rank: int = 0,
    rdzv_endpoint: str | None = None,
) -> int:
    """Run `enet <argv>` on nproc_per_node ranks (x nnodes); returns the job's exit code.

    The elastic launcher runs in this process, so that a failed rank becomes one line naming
    it and its exit code rather than the launcher's own traceback.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import parse_args, run

    if nproc_per_node < 1 or nnodes < 1:
        raise EnetError("--nproc-per-node and --nnodes must be >= 1")
    args = [f"--nproc-per-node={nproc_per_node}", f"--nnodes={nnodes}"]
    if nnodes == 1 and rdzv_endpoint is None:
        args.append("--standalone")  # a free local port, no endpoint needed
    else:
        if rdzv_endpoint is None:
            raise EnetError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (the first node's)")
        args += [
            "--rdzv-backend=c10d",
            f"--rdzv-endpoint={rdzv_endpoint}",
            "--rdzv-id=enet",
            f"--node-rank={node_rank}",
        ]
    args += ["--module", "enet", *strip_launcher_flags(argv)]
    # each rank gets its share of the cores (torchrun would otherwise give one thread each)
    os.environ.setdefault(
        "OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // nproc_per_node))
    )
    try:
        run(parse_args(args))
    except ChildFailedError as err:
        rank, failure = err.get_first_failure()
        code = failure.exitcode
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        raise EnetError(
            f"rank {rank} {how}, so the distributed job stopped (its message is above)"
        ) from None
    return 0
