"""enet's command line in a process of its own, forked from one that imported enet once.

`python -m enet ...` spends about 4 of a short test run's seconds importing torch, torchvision
and the training loop; the suite runs enet's commands over a hundred times. conftest.run_enet
therefore starts them through multiprocessing's forkserver, whose server has imported this
module and enet's command line (`PRELOAD`) once: each command is a fresh process (its own
memory, signals, exit code, file descriptors 1 and 2 into files) that runs `python -m enet`'s
code with the test's arguments, working folder and environment, and ends as the interpreter
would (atexit handlers, flushed streams). Libraries that read the environment when imported
(timm, huggingface_hub, mlflow, wandb) are not preloaded, so each command imports them under
its own environment. Processes that a command starts (compare's runs, torchrun's ranks, loader
workers) are ordinary subprocesses.
"""

from __future__ import annotations

import atexit
import os
import runpy
import sys
import traceback

# set before the preloaded modules read them: enet's console takes its width when imported
os.environ.setdefault("COLUMNS", "120")
os.environ.setdefault("PYTHONUNBUFFERED", "1")

PRELOAD = [
    "cli_process",
    "enet.cli",
    "enet.train.loop",
    "enet.evaluate",
    "enet.compare",
    "enet.data.dali_pipelines",  # DALI's Python side; its pipelines start threads when built
    "nvidia.dali.plugin.pytorch",
]


def run(args: list[str], cwd: str, env: dict, out: str, err: str) -> None:
    """The forked process: enet's `python -m enet ARGS` in `cwd` under `env`, its output into
    the files `out` and `err`; exits with the command's code."""
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    for fd, path in ((1, out), (2, err)):
        target = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(target, fd)
        os.close(target)
    sys.argv = ["enet", *args]
    atexit._clear()  # the server's own handlers are not the command's
    code = 0
    try:
        runpy.run_module("enet", run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if isinstance(e.code, int):
            code = e.code
        elif e.code is not None:
            print(e.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    finally:
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        os._exit(code)
