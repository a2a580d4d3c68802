"""``flexibert run|report|export|best|predict``: the main job and what users do with its results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

console = Console(stderr=True)


class _LiveReporter:
    """The run's reporter on a terminal: messages above, a bar per stage and the search's table below."""

    def __init__(self, live, bars) -> None:
        self.live, self.bars = live, bars
        self.tasks: dict[str, int] = {}
        self.view = None

    @property
    def shown(self) -> bool:
        """Whether the live view has anything to draw (nothing before the first stage starts)."""
        return bool(self.tasks) or self.view is not None

    def render(self):
        from rich.console import Group

        return Group(self.bars, self.view) if self.view is not None else self.bars

    def log(self, message: str) -> None:
        self.live.console.print(message)

    def stage(self, name: str, done: int, total: int) -> None:
        if name not in self.tasks:
            self.tasks[name] = self.bars.add_task(name, total=total)
        self.bars.update(self.tasks[name], completed=done, total=total)
        self.live.update(self.render())

    def search(self, state) -> None:
        from flexibert.cli.search import search_table

        self.view = search_table(state)
        self.live.update(self.render())


def run(
    config: Path = typer.Argument(..., help="Run config YAML, e.g. configs/quickstart.yaml."),
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="A GLUE-layout directory (<TASK>/train.tsv)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Run directory (default runs/<name>)."),
) -> None:
    """Space -> embeddings -> seeds -> active learning -> confirmation -> report; rerun the same command to resume."""
    from rich.live import Live
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from flexibert.run import run_job

    bars = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), console=console)
    reporter = None
    try:
        with Live(bars, console=console, refresh_per_second=2, transient=False) as live:
            reporter = _LiveReporter(live, bars)
            summary = run_job(config, out, data_dir, reporter=reporter)
    finally:
        if reporter is not None and reporter.shown and not console.is_terminal:
            console.line()  # a file or pipe gets the last view without its newline; a terminal gets one from Live
    console.print(answer_line(summary))
    console.print(f"report: {summary['report_html']}")
    typer.echo(json.dumps(summary))


def answer_line(summary: dict) -> str:
    """The run's answer in one line: the winner, its score, and what it keeps of the reference."""
    win, ref, kept, fast = summary["winner"], summary["reference"], summary["retention"], summary["speedup"]
    if win is None:
        return "no model finished"
    line = f"best model: {json.dumps(win['card'])}  dev {summary['metric']} {win['dev']:.4f}"
    if ref and kept:
        ci = f" ± {kept['dev_ci95']:.1%}" if kept.get("dev_ci95") is not None else ""
        line += f"; keeps {kept['dev']:.1%}{ci} of {ref.get('name') or 'the reference'}'s dev {ref['dev']:.4f}"
    if fast and "batch_1" in fast:
        line += f" at {fast['batch_1']:.2f}x its speed (batch 1)"
    if summary.get("baseline"):
        line += f"; TF-IDF baseline dev {summary['baseline']['dev']:.4f}"
    return line


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
) -> None:
    """Write the run's answer (the confirmed winner, else the best trial within budget) and its tokenizer as a
    standard HF checkpoint, with its modelling code and a model card (README.md)."""
    from flexibert._common import FlexiBertError
    from flexibert.model.export import export_checkpoint
    from flexibert.report.model_card import model_card
    from flexibert.search.results import RunResults

    results = RunResults(run_dir)
    winner = results.winner
    if winner is None or not winner["checkpoint"]:
        raise FlexiBertError(f"{run_dir}: no finished trial with a checkpoint to export")
    info = {**results.describe(winner), "task": results.config.task, "metric": results.metric(),
            "reference": results.describe(results.reference),
            "retention": results.retention, "speedup": results.speedup, "baseline": results.baseline,
            "data": _data_line(results)}
    path = export_checkpoint(winner["checkpoint"], out, readme=model_card(info))
    console.print(f"exported {json.dumps(winner['card'])} (validation {winner['validation']:.4f})")
    typer.echo(str(path))


def _data_line(results) -> str:
    """Where the training data came from, for the model card."""
    oc = results.train_config
    if oc is None:
        return f"replayed from {results.config.oracle.table}"
    source = oc.user_task["train"] if oc.user_task else (oc.data or "the GLUE data")
    held = f"{oc.holdout or 0:,} training examples held out for validation"
    if (results.winner or {}).get("refit"):
        return f"{source}; {held} while this model was chosen, then trained on as well; dev only reported"
    return f"{source}; {held}, dev only reported"


def best(
    run_dir: Path = typer.Argument(..., help="A run directory (`flexibert run`) or a search directory (`flexibert search`)."),
) -> None:
    """Print the run's answer as one JSON line (the winner, the reference, retention, speed-up, baseline)."""
    from flexibert.search.results import RunResults

    typer.echo(json.dumps(RunResults(run_dir).summary()))


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
    app.command("best")(best)
    app.command("predict")(predict)
