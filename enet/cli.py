"""The `enet` command line: parse, build a config, call one plain function. No logic here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from . import tables
from .choices import EXPORT_FORMATS, LOADERS, PRECISIONS, TRACKERS, one_of
from .errors import EnetError

app = typer.Typer(
    help="Train, evaluate and compare EfficientNet and XResNet image classifiers.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Plain output (logs, CI) gets room for the wide tables; a terminal keeps its own width.
console = Console(width=None if Console().is_terminal else 140)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        print(f"enet {version('enet')}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Train, evaluate and compare EfficientNet and XResNet image classifiers."""


@app.command("models")
def models_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    num_classes: Annotated[int, typer.Option(help="Classifier outputs for the counts.")] = 1000,
    zoo: Annotated[
        str | None, typer.Option(help="List a zoo's models instead: torchvision or timm.")
    ] = None,
    pattern: Annotated[
        str | None, typer.Option("--filter", help="Only names matching this glob (resnet*).")
    ] = None,
) -> None:
    """List the registered models: parameters, GFLOPs at the default resolution, defaults.
    With --zoo, a zoo's names (usable as torchvision:NAME, timm:NAME), with counts for 40 or
    fewer."""
    import fnmatch

    from .models import ZOO_COUNT_LIMIT, describe_models, describe_zoo

    if zoo is not None:
        rows = describe_zoo(zoo, pattern, num_classes)
    else:
        rows = describe_models(num_classes)
        rows = [r for r in rows if fnmatch.fnmatch(r["name"], pattern or "*")]
    if as_json:
        print(json.dumps(rows, indent=2))
    elif zoo is None:
        console.print(tables.models_table(rows, num_classes))
    else:
        console.print(tables.zoo_table(zoo, rows, num_classes, ZOO_COUNT_LIMIT))


ConfigOpt = Annotated[Path | None, typer.Option("--config", help="YAML recipe (configs/).")]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", help="Override any config key: section.key=value (repeatable)."),
]


InitFromOpt = Annotated[
    str | None, typer.Option(help="Start from an enet checkpoint or a state dict (fine-tuning).")
]
PretrainedOpt = Annotated[
    bool,
    typer.Option(
        "--pretrained",
        help="Start from ImageNet weights: torchvision's for B0-B7, a zoo model's own.",
    ),
]


# `enet train`'s named flags: option -> config key (the switches are added where they are read).
TRAIN_FLAGS = {
    "model": "model.name",
    "data": "data.data",
    "epochs": "train.epochs",
    "minutes": "train.minutes",
    "batch_size": "train.batch_size",
    "res": "data.res",
    "eval_res": "data.eval_res",
    "lr": "optim.lr",
    "seed": "train.seed",
    "out": "run.out",
    "device": "train.device",
    "loader": "data.loader",
    "precision": "train.precision",
    "compile": "train.compile",
    "threads": "train.threads",
    "init_from": "train.init_from",
    "track": "run.trackers",
}


@app.command("train", context_settings={"allow_interspersed_args": True})
def train_cmd(
    config: ConfigOpt = None,
    model: Annotated[str | None, typer.Option(help="Model name (`enet models`).")] = None,
    data: Annotated[
        str | None,
        typer.Option(
            help="Folder with train/ and val/, or mini, imagenette, imagenette-320, imagewoof..."
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Epochs.")] = None,
    minutes: Annotated[
        float | None,
        typer.Option(
            help="Wall-clock budget instead of epochs; the schedule is fitted to end on time."
        ),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per step per rank.")] = None,
    res: Annotated[
        int | None, typer.Option(help="Training resolution (default: the model's).")
    ] = None,
    eval_res: Annotated[int | None, typer.Option(help="Evaluation resolution.")] = None,
    lr: Annotated[float | None, typer.Option(help="Peak learning rate.")] = None,
    seed: Annotated[
        int | None, typer.Option(help="Seed of initialisation, order, augmentation.")
    ] = None,
    out: Annotated[
        str | None, typer.Option(help="Run folder (default runs/<model>-<time>).")
    ] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue OUT/checkpoints/last.pt.")
    ] = False,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start over in a non-empty OUT.")
    ] = False,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    loader: Annotated[str | None, typer.Option(help=f"{one_of(LOADERS)}.")] = None,
    precision: Annotated[str | None, typer.Option(help=f"{one_of(PRECISIONS)}.")] = None,
    compile: Annotated[
        bool | None, typer.Option("--compile/--no-compile", help="torch.compile the model.")
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help="torch threads per process (default: one per core); lower it when another "
            "job shares the cores."
        ),
    ] = None,
    init_from: InitFromOpt = None,
    pretrained: PretrainedOpt = False,
    track: Annotated[
        str | None,
        typer.Option(help=f"Experiment trackers, comma-separated: {one_of(TRACKERS)}."),
    ] = None,
    nproc_per_node: Annotated[int, typer.Option(help="Ranks on this machine (torchrun).")] = 1,
    nnodes: Annotated[int, typer.Option(help="Machines (torchrun).")] = 1,
    node_rank: Annotated[int, typer.Option(help="This machine's rank (torchrun).")] = 0,
    rdzv_endpoint: Annotated[
        str | None, typer.Option(help="HOST:PORT of the rendezvous, for several machines.")
    ] = None,
    set_: SetOpt = None,
) -> None:
    """Train a model; write the run folder (config, env, metrics, checkpoints, summary)."""
    from .train.launch import launch, launcher_requested
    from .train.loop import fit
    from .train.run_config import resolve_train_config

    if launcher_requested(nproc_per_node, nnodes):
        raise typer.Exit(launch(sys.argv[1:], nproc_per_node, nnodes, node_rank, rdzv_endpoint))
    given = locals()
    flags = {key: given[name] for name, key in TRAIN_FLAGS.items()}
    # switches count only when given (their False would override a recipe's true)
    flags |= {
        "run.resume": resume or None,
        "run.overwrite": overwrite or None,
        "train.pretrained": pretrained or None,
    }
    cfg = resolve_train_config(str(config) if config else None, flags, set_)
    fit(cfg, console=console)


@app.command("eval")
def eval_cmd(
    checkpoint: Annotated[
        str, typer.Argument(help="A checkpoint, or a run folder (its checkpoints/best.pt).")
    ],
    data: Annotated[
        str | None, typer.Option(help="Data to evaluate on (default: the run's).")
    ] = None,
    res: Annotated[int | None, typer.Option(help="Evaluation resolution.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per batch.")] = None,
    tta: Annotated[bool, typer.Option("--tta", help="Average with the mirrored image.")] = False,
    ema: Annotated[bool, typer.Option("--ema", help="Evaluate the EMA weights.")] = False,
    out: Annotated[
        str | None,
        typer.Option(
            help="Folder for eval.json, per_class.csv and the plots (default: "
            "RUN/eval/<checkpoint>-<res>px[-tta][-ema], one per set of options)."
        ),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an evaluation with other options in OUT.")
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print eval.json's record instead of tables.")
    ] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    loader: Annotated[str, typer.Option(help=f"{one_of(LOADERS)}.")] = "auto",
) -> None:
    """Top-1, top-5, per-class accuracy, the most confused classes and a confusion matrix."""
    from .evaluate import run_eval

    record = run_eval(
        checkpoint,
        data=data,
        res=res,
        batch_size=batch_size,
        tta=tta,
        ema=ema,
        out=out,
        overwrite=overwrite,
        device=device,
        loader=loader,
        console=Console(quiet=True) if as_json else console,
    )
    if as_json:
        print(json.dumps(record, indent=1))


@app.command("predict")
def predict_cmd(
    checkpoint: Annotated[
        str, typer.Argument(help="A checkpoint, or a run folder (its checkpoints/best.pt).")
    ],
    paths: Annotated[list[str], typer.Argument(help="Image files or folders (searched deeply).")],
    top_k: Annotated[int, typer.Option(help="Classes per file.")] = 5,
    out: Annotated[
        str | None, typer.Option(help="Also write the rows to FILE.csv or FILE.json.")
    ] = None,
    ema: Annotated[bool, typer.Option("--ema", help="Use the EMA weights.")] = False,
    res: Annotated[
        int | None, typer.Option(help="Input resolution (default: the run's evaluation one).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """The top-k classes of image files, with the checkpoint's evaluation transform."""
    from .predict import predict, write_predictions

    rows = predict(checkpoint, paths, top_k=top_k, ema=ema, res=res, device=device)
    if out:
        write_predictions(rows, Path(out))
    if as_json:
        print(json.dumps(rows, indent=1))
    else:
        console.print(tables.predictions_table(rows, top_k))
        if out:
            console.print(f"wrote {out}", highlight=False)


@app.command("plot")
def plot_cmd(
    runs: Annotated[list[str], typer.Argument(help="Run folders (each with metrics.jsonl).")],
    out: Annotated[
        str, typer.Option(help="The PNG to write (default: runs.png in the current folder).")
    ] = "runs.png",
) -> None:
    """Loss, top-1 and learning-rate curves of one or several runs, in one figure."""
    from .report.plots import runs_plot
    from .train.run_folder import RunFolder

    if not out.lower().endswith(".png"):
        raise EnetError(f"--out {out}: give a .png file")
    curves = {}
    for run in runs:
        records = RunFolder(run).read_metrics()
        if not records:
            raise EnetError(f"{run} has no metrics.jsonl records (is it a run folder?)")
        curves[Path(run).name if Path(run).name not in curves else run] = records
    written = runs_plot(curves, Path(out)).resolve()
    console.print(f"wrote {written}", highlight=False, soft_wrap=True)


@app.command("lr-find", context_settings={"allow_interspersed_args": True})
def lr_find_cmd(
    config: ConfigOpt = None,
    model: Annotated[str | None, typer.Option(help="Model name (`enet models`).")] = None,
    data: Annotated[str | None, typer.Option(help="Dataset, as for `enet train`.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Images per step.")] = None,
    res: Annotated[int | None, typer.Option(help="Resolution (default: the model's).")] = None,
    device: Annotated[str | None, typer.Option(help="auto, cpu or cuda.")] = None,
    loader: Annotated[str | None, typer.Option(help=f"{one_of(LOADERS)}.")] = None,
    start_lr: Annotated[float, typer.Option(help="First learning rate.")] = 1e-7,
    end_lr: Annotated[float, typer.Option(help="Last learning rate.")] = 10.0,
    num_it: Annotated[int, typer.Option(help="Steps (at most; it stops on divergence).")] = 100,
    plot: Annotated[str, typer.Option(help="The PNG to write.")] = "lr_find.png",
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the result as JSON (with every step).")
    ] = False,
    set_: SetOpt = None,
) -> None:
    """Learning-rate range test: a fresh model trains while the lr rises exponentially; prints
    the suggested lr and plots loss against lr. Writes no run folder and no checkpoint."""
    from .config import build_config
    from .lr_find import lr_find
    from .report.plots import lr_find_plot

    if not plot.lower().endswith(".png"):
        raise EnetError(f"--plot {plot}: give a .png file")
    flags = {
        "model.name": model,
        "data.data": data,
        "train.batch_size": batch_size,
        "data.res": res,
        "train.device": device,
        "data.loader": loader,
    }
    cfg = build_config(str(config) if config else None, flags, set_)
    result = lr_find(cfg, start_lr, end_lr, num_it)
    title = f"lr-find: {cfg.model.name} on {cfg.data.data}, {cfg.optim.name}"
    lr_find_plot(result, Path(plot), title)
    if as_json:
        print(json.dumps(result.as_dict() | {"plot": plot}))
        return
    console.print(tables.lr_find_table(result, title))
    if result.warning:
        console.print(f"[bold red]warning:[/] {result.warning}", highlight=False)
    console.print(f"wrote {plot}", highlight=False)


@app.command("export")
def export_cmd(
    checkpoint: Annotated[
        str, typer.Argument(help="A checkpoint, or a run folder (its checkpoints/best.pt).")
    ],
    format: Annotated[str, typer.Option("--format", help=f"{one_of(EXPORT_FORMATS)}.")] = "onnx",
    out: Annotated[str, typer.Option(help="The file to write.")] = "model.onnx",
    ema: Annotated[bool, typer.Option("--ema", help="Export the EMA weights.")] = False,
    res: Annotated[
        int | None, typer.Option(help="Example input size (default: the run's evaluation one).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of text.")] = False,
) -> None:
    """Write the model as ONNX, a torch.export program or TorchScript (dynamic batch)."""
    from .export import export

    info = export(checkpoint, format, out, ema=ema, res=res)
    if as_json:
        print(json.dumps(info, indent=1))
        return
    console.print(
        f"wrote {info['file']}: {info['model']} as {info['format']}, input {info['input']} at "
        f"{info['res']}px, output {info['output']} ({len(info['classes'])} classes)",
        highlight=False,
        soft_wrap=True,
    )


@app.command("compare-baselines")
def compare_cmd(
    config: Annotated[
        Path | None,
        typer.Option("--config", help="Compare config (configs/compare-imagenette.yaml)."),
    ] = None,
    models: Annotated[str | None, typer.Option(help="Models, comma-separated.")] = None,
    epochs: Annotated[int | None, typer.Option(help="Budget: epochs per run.")] = None,
    minutes: Annotated[
        float | None,
        typer.Option(help="Budget: wall-clock minutes per run (schedules fitted to end on time)."),
    ] = None,
    seeds: Annotated[
        str | None,
        typer.Option(
            help="Seeds per model, or auto: more seeds only where the verdict is undecided."
        ),
    ] = None,
    min_seeds: Annotated[int | None, typer.Option(help="--seeds auto: first seeds (3).")] = None,
    max_seeds: Annotated[int | None, typer.Option(help="--seeds auto: most seeds (10).")] = None,
    data: Annotated[str | None, typer.Option(help="Dataset for every run.")] = None,
    res: Annotated[
        int | None, typer.Option(help="Training resolution of every run (default 128).")
    ] = None,
    out: Annotated[str, typer.Option(help="Folder of the runs and the report.")] = "runs/compare",
    report_only: Annotated[
        bool,
        typer.Option(
            "--report-only", help="Write the report of the runs as they stand; train nothing."
        ),
    ] = False,
    set_: SetOpt = None,
) -> None:
    """Train models under equal budgets; report accuracy against cost, and how sure the
    verdict is."""
    from .compare import load_compare_config, run

    cfg = load_compare_config(
        config,
        models=[m.strip() for m in models.split(",") if m.strip()] if models else None,
        epochs=epochs,
        minutes=minutes,
        seeds=seeds,
        min_seeds=min_seeds,
        max_seeds=max_seeds,
        data=data,
        res=res,
        extra_set=set_,
    )
    run(cfg, out, console=console, report_only=report_only)


data_app = typer.Typer(help="Datasets: download, check, info.", no_args_is_help=True)
app.add_typer(data_app, name="data")
bench_app = typer.Typer(
    help="Benchmarks: model step and data pipeline throughput.", no_args_is_help=True
)
app.add_typer(bench_app, name="bench")


@data_app.command("download")
def data_download_cmd(
    name: Annotated[
        str,
        typer.Argument(
            help="imagenette, imagenette-320, imagenette-full, imagewoof or imagewoof-320"
        ),
    ],
) -> None:
    """Download a named dataset once into $ENET_DATA_DIR (default ~/.cache/enet)."""
    from .data.datasets import NAMED_DATASETS, resolve_data

    if name not in NAMED_DATASETS:
        raise EnetError(f"unknown dataset {name!r}; named datasets: {', '.join(NAMED_DATASETS)}")
    console.print(f"{name}: {resolve_data(name)}")


@data_app.command("info")
def data_info_cmd(
    data: Annotated[str, typer.Argument(help="A folder with train/ and val/, or a dataset name.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Classes, images per split and class, image size range, total bytes."""
    from .data.datasets import dataset_info, index_dataset, resolve_data

    info = dataset_info(index_dataset(resolve_data(data)))
    if as_json:
        print(json.dumps(info, indent=2))
        return
    console.print(tables.data_info_table(info))
    width, height = info["width_range"], info["height_range"]
    console.print(
        f"image sizes: width {width[0]}-{width[1]}, height {height[0]}-{height[1]}; "
        f"{info['total_bytes'] / 1e6:.1f} MB; {info['ignored_files']} non-image files ignored; "
        f"{info['skipped_files']} bad files skipped"
    )


@data_app.command("shard")
def data_shard_cmd(
    data: Annotated[str, typer.Argument(help="A dataset: folder, label file or name.")],
    out: Annotated[str, typer.Argument(help="A new folder for the shards and shards.json.")],
    shard_size: Annotated[str, typer.Option(help="About this many bytes a shard.")] = "256MB",
    seed: Annotated[int, typer.Option(help="Shuffles the training samples.")] = 0,
    val_pct: Annotated[
        float | None, typer.Option(help="Data without a validation split: hold this out.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Write DATA as WebDataset tar shards (train shuffled, val in order) with an index;
    atomic: an interrupted run leaves no OUT. Needs the extra: pip install 'enet[webdataset]'."""
    try:
        import webdataset  # noqa: F401
    except ImportError:
        raise EnetError(
            "enet data shard needs webdataset: pip install 'enet[webdataset]'"
        ) from None
    from .data.shard_writer import describe, write_shards
    from .data.shards import parse_size

    if val_pct is not None and not 0 < val_pct < 1:
        raise EnetError(f"--val-pct must be in (0, 1), got {val_pct}")
    report = describe(
        write_shards(data, out, shard_size=parse_size(shard_size), seed=seed, val_pct=val_pct)
    )
    if as_json:
        print(json.dumps(report, indent=2))
        return
    parts = [
        f"{s['samples']:,} {name} samples in {s['shards']} shard(s), {s['bytes'] / 1e6:.1f} MB"
        for name, s in report["splits"].items()
    ]
    console.print(
        f"wrote {out}: {'; '.join(parts)}; {report['classes']} classes; index {report['index']}",
        highlight=False,
        soft_wrap=True,
    )


@data_app.command("check")
def data_check_cmd(
    data: Annotated[str, typer.Argument(help="A folder with train/ and val/, or a dataset name.")],
    workers: Annotated[int | None, typer.Option(help="Decoding processes.")] = None,
) -> None:
    """Decode every image; list the unreadable ones (exit 1 if any). Loaders then skip them."""
    from .data.datasets import check_dataset

    report = check_dataset(data, workers=workers)

    if report.problems:
        problems = [(tables.relative(f.path, report.root), f.problem) for f in report.problems]
        console.print(tables.unreadable_table(problems))
    for f in report.notes:
        note = f"note: {tables.relative(f.path, report.root)}: {f.note}"
        console.print(note, highlight=False, soft_wrap=True)
    console.print(
        f"{report.total} images decoded: {len(report.problems)} unreadable, "
        f"{len(report.notes)} with notes; results in {report.saved_to}",
        highlight=False,
    )
    if report.problems:
        raise typer.Exit(1)


def _write_bench(rows: list[dict], out: str | None, kind: str) -> None:
    from .fileio import write_text_atomic

    path = Path(out) if out else Path("bench-results") / f"{kind}.json"
    write_text_atomic(path, json.dumps(rows, indent=2) + "\n")
    console.print(f"wrote {path}", highlight=False)


@bench_app.command("model")
def bench_model_cmd(
    models: Annotated[str, typer.Option(help="enet models, comma-separated.")] = (
        "efficientnet_b0,xresnet50"
    ),
    peers: Annotated[
        str, typer.Option(help="torchvision models to compare with ('' for none).")
    ] = ("efficientnet_b0,resnet50"),
    batch_size: Annotated[int, typer.Option(help="Images per step.")] = 32,
    res: Annotated[int, typer.Option(help="Input resolution, pixels.")] = 128,
    precision: Annotated[str, typer.Option(help=f"{one_of(PRECISIONS)}.")] = "fp32",
    channels_last: Annotated[bool, typer.Option("--channels-last/--no-channels-last")] = True,
    compile: Annotated[bool, typer.Option("--compile", help="torch.compile every model.")] = False,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    steps: Annotated[
        int, typer.Option(help="Timed steps per model, at least 5 (median reported).")
    ] = 7,
    same_runtime: Annotated[
        bool,
        typer.Option(
            "--same-runtime",
            help="Run torchvision's models with enet's CPU allocator setting too "
            "(compares the model code alone).",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    out: Annotated[
        str | None, typer.Option(help="JSON file (default bench-results/model.json).")
    ] = None,
) -> None:
    """Training-step images/s and memory of enet's models against torchvision's."""
    from .bench import bench_model

    def split(text: str) -> tuple[str, ...]:
        return tuple(x.strip() for x in text.split(",") if x.strip())

    rows = bench_model(
        split(models),
        split(peers),
        batch_size=batch_size,
        res=res,
        precision=precision,
        channels_last=channels_last,
        compile_model=compile,
        device=device,
        steps=steps,
        same_runtime=same_runtime,
    )
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        r = rows[0]
        console.print(
            tables.bench_table(
                rows,
                f"training step, batch {batch_size}, {res}px, {r['precision']}, "
                f"{'channels_last' if channels_last else 'NCHW'}"
                f"{', compiled' if compile else ''} on {r['device']}",
            )
        )
        if r["device"] == "cpu":
            peers_run = "the same way" if same_runtime else "in a plain process"
            console.print(
                "each model in a process of its own; enet's as enet train runs them (freed "
                f"memory retained), torchvision's {peers_run}; peak memory: the process's RSS"
            )
    _write_bench(rows, out, "model")


@bench_app.command("data")
def bench_data_cmd(
    data: Annotated[str, typer.Argument(help="Dataset (its train split is read).")] = "mini",
    res: Annotated[int, typer.Option(help="Output resolution, pixels.")] = 128,
    batch_size: Annotated[int, typer.Option(help="Images per batch.")] = 64,
    images: Annotated[int, typer.Option(help="Images per timed pass.")] = 2048,
    passes: Annotated[int, typer.Option(help="Timed passes per loader (median reported).")] = 5,
    workers: Annotated[int, typer.Option(help="Worker processes / threads of every loader.")] = 2,
    randaugment: Annotated[bool, typer.Option("--randaugment/--no-randaugment")] = True,
    loaders: Annotated[
        str | None,
        typer.Option(help="Subset: dali-enet, dali-dali, torch, baseline (comma-separated)."),
    ] = None,
    device: Annotated[str, typer.Option(help="Where batches are delivered: cpu or cuda.")] = "cpu",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    out: Annotated[
        str | None, typer.Option(help="JSON file (default bench-results/data.json).")
    ] = None,
) -> None:
    """Images/s of enet's loaders against torchvision's ImageFolder + DataLoader baseline."""
    from .bench import bench_data

    if passes < 3:
        raise EnetError("--passes must be at least 3 (a median needs them)")
    rows = bench_data(
        data,
        res=res,
        batch_size=batch_size,
        images=images,
        passes=passes,
        workers=workers,
        randaugment=(2, 9) if randaugment else (0, 9),
        loaders=tuple(loaders.split(",")) if loaders else None,
        device=device,
    )
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        console.print(
            tables.bench_table(
                rows,
                f"loader throughput, {res}px, batch {batch_size}, RandAugment "
                f"{'2, 9' if randaugment else 'off'}, {workers} workers, {device}",
            )
        )
    _write_bench(rows, out, "data")


def main(argv: list[str] | None = None) -> None:
    """Console entry: user errors become one line on stderr and exit code 2."""
    try:
        app(args=argv, prog_name="enet")
    except EnetError as err:
        # escaped: a message's own brackets (pip install 'enet[timm]') are not rich markup
        Console(stderr=True, soft_wrap=True).print(
            f"[bold red]error:[/] {escape(str(err))}", highlight=False
        )
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        Console(stderr=True).print("interrupted")
        sys.exit(130)
