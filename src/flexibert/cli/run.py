"""``flexibert run|report|export|predict``: the main job and what users do with its results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

console = Console(stderr=True)


def run(
    config: Path = typer.Argument(..., help="Run config YAML, e.g. configs/quickstart.yaml."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="A GLUE-layout directory (<TASK>/train.tsv)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/<name>)."),
) -> None:
    """Space -> embeddings -> seeds -> active learning -> confirmation -> report; rerun the same command to resume."""
    from rich.console import Group
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=console)
    tasks: dict[str, int] = {}
    view = {"search": None}

    def render():
        return Group(bars, view["search"]) if view["search"] is not None else bars

    try:
        summary = _run_live(config, out, data_dir, bars, render, tasks, view)
    finally:
        console.line()  # an error line then starts on a line of its own, below the live view
    console.print(f"best model: {json.dumps(summary['best_card'])}  dev {score_name(summary)} "
                  f"{summary['best_dev_accuracy']}")
    console.print(f"report: {summary['report_html']}")
    typer.echo(json.dumps(summary))


def score_name(summary: dict) -> str:
    """What the summary's dev number is: a regression's (or MRPC's) is the mean of its metrics, not an accuracy."""
    rows = summary.get("confirmed") or []
    keys = list(rows[0].get("dev_metrics") or {}) if rows else []  # a finalist's dev metrics only
    return "accuracy" if keys in ([], ["accuracy"]) else f"score (mean of {', '.join(keys)})"


def _run_live(config, out, data_dir, bars, render, tasks, view) -> dict:
    from rich.live import Live

    from flexibert.cli.search import progress_table
    from flexibert.pipeline import run_pipeline

    with Live(render(), console=console, refresh_per_second=2, transient=False) as live:
        def stage(name: str, done: int, total: int) -> None:
            if name not in tasks:
                tasks[name] = bars.add_task(name, total=total)
            bars.update(tasks[name], completed=done, total=total)
            live.update(render())

        def search(progress) -> None:
            view["search"] = progress_table(progress)
            live.update(render())

        return run_pipeline(config, out, data_dir, log=lambda msg: live.console.print(msg), on_progress=search,
                            progress=stage)


def report(
    run_dir: Path = typer.Argument(..., help="A run directory (`flexibert run`) or a search directory (`flexibert search`)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write (default <run>/report)."),
) -> None:
    """PNG/SVG figures, tables and one self-contained interactive HTML file."""
    from flexibert.report.run import write_run_report

    files = write_run_report(run_dir, out)
    console.print(f"figures: {', '.join(p.name for p in files.figures)}")
    typer.echo(str(files.html))


def export(
    run_dir: Path = typer.Argument(..., help="A run directory (`flexibert run`) or a search directory (`flexibert search`)."),
    out: Path = typer.Option(..., "--out", help="New directory for the Hugging Face checkpoint."),
    best: bool = typer.Option(True, "--best/--no-best", help="Export the best trained model."),
) -> None:
    """Write the best model and its tokenizer as a standard HF checkpoint (with its modelling code)."""
    from flexibert._common import FlexiBertError
    from flexibert.model.export import export_checkpoint
    from flexibert.pipeline import best_model

    if not best:
        raise FlexiBertError("only --best is supported: export the best trained model")
    winner = best_model(run_dir)
    if winner is None or not winner["checkpoint"]:
        raise FlexiBertError(f"{run_dir}: no finished trial with a checkpoint to export")
    path = export_checkpoint(winner["checkpoint"], out)
    console.print(f"exported {json.dumps(winner['card'])} (score {winner['score']:.4f})")
    typer.echo(str(path))


def predict(
    model_dir: Path = typer.Argument(..., help="An exported checkpoint directory."),
    texts: List[str] = typer.Argument(..., help='Sentences; a pair is "first [SEP] second".'),
) -> None:
    """Classify sentences with an exported model, through plain transformers."""
    from flexibert.model.export import predict as predict_texts

    for row in predict_texts(model_dir, list(texts)):
        typer.echo(json.dumps(row))


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("report")(report)
    app.command("export")(export)
    app.command("predict")(predict)
