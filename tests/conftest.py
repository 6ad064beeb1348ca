"""Shared test helpers: running the real `enet` CLI, and the optional full Imagenette copy."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_enet(
    *args: str,
    cwd: Path | None = None,
    env: dict | None = None,
    timeout: float = 600,
    check: bool = False,
) -> subprocess.CompletedProcess:
    """Run `python -m enet ARGS` as a user would, in a process of its own, capturing its output.
    The process is forked from a server that imported enet once (tests/cli_process.py), unless
    `env` sets what an interpreter reads when it starts (PYTHONPATH and its sitecustomize, the
    C library's and OpenMP's settings) or ENET_TEST_EXEC=1: then a fresh interpreter runs it."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "120", **(env or {})}
    read_at_start = any(key.startswith(STARTUP_ENV) for key in env or {})
    if read_at_start or os.environ.get("ENET_TEST_EXEC") == "1":
        proc = subprocess.run(
            [sys.executable, "-m", "enet", *args],
            cwd=cwd or REPO,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    else:
        proc = _run_forked(list(args), cwd or REPO, full_env, timeout)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"enet {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


STARTUP_ENV = ("PYTHON", "OMP_", "MKL_", "MALLOC_", "LD_")


@functools.cache
def _forkserver():
    """multiprocessing's forkserver context, its server preloading enet (started on first use)."""
    import multiprocessing

    import cli_process

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(cli_process.PRELOAD)
    return context


def _run_forked(args: list[str], cwd: Path, env: dict, timeout: float):
    import tempfile

    import cli_process

    with tempfile.TemporaryDirectory(prefix="enet-cli-") as tmp:
        out, err = Path(tmp) / "stdout", Path(tmp) / "stderr"
        process = _forkserver().Process(
            target=cli_process.run, args=(args, str(cwd), env, str(out), str(err))
        )
        process.start()
        process.join(timeout)
        if process.is_alive():
            process.kill()
            process.join()
            raise subprocess.TimeoutExpired(["enet", *args], timeout)
        stdout = out.read_text(errors="replace") if out.exists() else ""
        stderr = err.read_text(errors="replace") if err.exists() else ""
    return subprocess.CompletedProcess(["enet", *args], process.exitcode, stdout, stderr)


E2E_FIXTURES = {"run_dir", "imagenette_path"}
# enet's commands in a subprocess, or the model benchmark's worker processes
E2E_CALLS = ("run_enet(", "subprocess.Popen(", "bench_model(")


def pytest_collection_modifyitems(config, items):
    """Mark `e2e` every test that runs enet's commands as a user would (a subprocess, a
    fixture that trains one, the model benchmark's processes) or reads the full Imagenette
    copy: `make test-fast` leaves them out (`-m "not e2e"`), `make test` runs everything."""
    import inspect

    for item in items:
        function = getattr(item, "function", None)
        source = inspect.getsource(function) if function is not None else ""
        uses = E2E_FIXTURES & set(getattr(item, "fixturenames", ()))
        if uses or any(call in source for call in E2E_CALLS):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def imagenette_path() -> Path:
    """The full Imagenette copy named by ENET_TEST_DATA; tests that need it skip without it."""
    value = os.environ.get("ENET_TEST_DATA")
    if not value:
        pytest.skip("ENET_TEST_DATA is not set (point it at ../shared/data/imagenette-224)")
    path = Path(value)
    if not (path / "train").is_dir():
        pytest.skip(f"ENET_TEST_DATA={value} has no train/ folder")
    return path


@pytest.fixture(autouse=True)
def _restore_torch_globals():
    """Each test leaves torch's process-wide settings as it found them (thread count, float32
    matmul precision): a test that changes one must not change the figures of the tests after
    it (the fastai comparison depends on the thread count)."""
    import torch

    threads, matmul = torch.get_num_threads(), torch.get_float32_matmul_precision()
    yield
    torch.set_num_threads(threads)
    torch.set_float32_matmul_precision(matmul)


@pytest.fixture(autouse=True)
def _collect_pipelines():
    """Free each test's loaders when it ends. A DALI loader and its pipeline hold each other
    (the pipeline's source is the loader's method), so only the garbage collector frees them,
    and until then the pipeline's threads keep prefetching: a torch DataLoader forking its
    workers meanwhile (a later test) can fork a lock held by one of them and hang."""
    yield
    import gc

    gc.collect()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A finished one-epoch smoke run at 32 px (once per test module), for the commands that
    read run folders: export, predict."""
    out = tmp_path_factory.mktemp("run") / "run"
    run_enet(
        "train", "--config", "configs/smoke.yaml", "--res", "32", "--epochs", "1", "--out",
        str(out), check=True,
    )  # fmt: skip
    return out
