"""The `enet` command line: parse, build a config, call one plain function. No logic here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import EnetError

app = typer.Typer(
    help="Train, evaluate and compare EfficientNet and XResNet image classifiers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console()


def _not_built(command: str) -> None:
    raise EnetError(f"`enet {command}` is not built yet")


@app.command("models")
def models_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    num_classes: Annotated[int, typer.Option(help="Classifier outputs for the counts.")] = 1000,
) -> None:
    """List the registered models: parameters, GFLOPs at the default resolution, defaults."""
    from .models import get_model_info, list_models

    rows = []
    for name in list_models():
        info = get_model_info(name)
        rows.append(
            dict(
                name=name,
                family=info.family,
                params=info.params(num_classes),
                gflops=round(info.gflops(num_classes=num_classes), 3),
                resolution=info.resolution,
                dropout=info.dropout,
            )
        )
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table(title=f"enet models ({num_classes} classes; GFLOPs: 2 per multiply-add)")
    for col, justify in [
        ("name", "left"),
        ("params", "right"),
        ("GFLOPs", "right"),
        ("resolution", "right"),
        ("dropout", "right"),
    ]:
        table.add_column(col, justify=justify)
    for r in rows:
        table.add_row(
            r["name"], f"{r['params']:,}", f"{r['gflops']:.3f}", str(r["resolution"]),
            f"{r['dropout']:.1f}",
        )
    console.print(table)


@app.command("train")
def train_cmd() -> None:
    """Train a model (see `enet train --help`)."""
    _not_built("train")


@app.command("eval")
def eval_cmd() -> None:
    """Evaluate a checkpoint."""
    _not_built("eval")


@app.command("compare-baselines")
def compare_cmd() -> None:
    """Train EfficientNet and XResNet under equal budgets and report."""
    _not_built("compare-baselines")


data_app = typer.Typer(help="Datasets: download, check, info.", no_args_is_help=True)
app.add_typer(data_app, name="data")
bench_app = typer.Typer(help="Benchmarks: model step and data pipeline throughput.",
                        no_args_is_help=True)
app.add_typer(bench_app, name="bench")


@data_app.command("info")
def data_info_cmd(data: str) -> None:
    """Classes, images per split and class, sizes, bytes."""
    _not_built("data info")


@bench_app.command("model")
def bench_model_cmd() -> None:
    """Training-step throughput of enet's models against torchvision's."""
    _not_built("bench model")


def main(argv: Optional[list[str]] = None) -> None:
    """Console entry: user errors become one line on stderr and exit code 2."""
    try:
        app(args=argv, prog_name="enet")
    except EnetError as err:
        Console(stderr=True).print(f"[bold red]error:[/] {err}", highlight=False)
        sys.exit(2)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        sys.exit(130)


_ = Path  # used by the commands added below
