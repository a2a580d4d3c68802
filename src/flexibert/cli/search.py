"""``flexibert search``: asynchronous active learning over a space, with a live view."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

import typer

from flexibert._common import FlexiBertError
from flexibert.cli.train import (
    DevFileOpt,
    LabelColumnOpt,
    LabelsOpt,
    RegressionOpt,
    TextColumnsOpt,
    TrainFileOpt,
)


def _given(**options: Any) -> dict[str, Any]:
    """The options set on the command line; the rest keep the config's defaults."""
    return {k: v for k, v in options.items() if v is not None}


def _absolute(path: Path | None) -> str | None:
    """Paths are stored absolute: a resumed run may start from another directory."""
    return None if path is None else str(path.resolve())


def _refuse(oracle: str, options: dict[str, Any]) -> None:
    given = [flag for flag, value in options.items() if value is not None]
    if given:
        raise FlexiBertError(f"{', '.join(given)}: not an option of the {oracle} oracle")


def progress_table(progress):
    """The live view of a search: trials, best so far, max sigma, held-out quality, threshold."""
    from rich.table import Table

    t = Table(title="flexibert search", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("trials", f"{progress.done} done, {progress.running} running, {progress.queued} queued, "
                        f"{progress.failed} failed")
    if progress.best_value is not None:
        t.add_row("best so far", f"{progress.best_value:.4f}  {progress.best_card}")
    if progress.max_sigma is not None:
        t.add_row("max sigma", f"{progress.max_sigma:.5f}  (stop when 1.96 sigma = {1.96 * progress.max_sigma:.5f}"
                               f" < {progress.ci})")
    h = progress.held_out
    t.add_row("held-out", "-" if h is None else
              f"Spearman {h.spearman:.3f}, Kendall {h.kendall:.3f}, MAE {h.mae:.4f} ({h.folds}-fold CV, n={h.n})")
    t.add_row("overlap threshold", f"{progress.threshold:.2f}")
    t.add_row("elapsed", f"{progress.elapsed:.1f} s")
    if progress.reason:
        t.add_row("stopped", progress.reason)
    return t


def register(app: typer.Typer) -> None:
    @app.command("search")
    def search(
        task: Optional[str] = typer.Option(None, "--task", help="Task to maximise (sst2, qnli, ...; a replay table's key)."),
        oracle: Optional[str] = typer.Option(None, "--oracle",
                                             help="train (fine-tune each model) or replay (look up --table); "
                                                  "default: replay when --table is given."),
        table: Optional[Path] = typer.Option(None, "--table", help="Measured table JSON (the study's format) for replay."),
        space: Optional[Path] = typer.Option(None, "--space", help="Design-space YAML (train: the candidates)."),
        rule: Optional[str] = typer.Option(None, "--rule", help="monotone (default) or full."),
        library: Optional[Path] = typer.Option(None, "--library", help="A built space library, or the base directory to build one in (runs/spaces)."),
        acquisition: Optional[str] = typer.Option(None, "--acquisition", help="ucb (default), ei, uncertainty or random."),
        beta: Optional[float] = typer.Option(None, "--beta", help="UCB exploration weight (default 2)."),
        ci: Optional[float] = typer.Option(None, "--ci", help="Stop when 1.96 max sigma < CI (default 0.005)."),
        seed: Optional[int] = typer.Option(None, "--seed", help="Search seed, and train: training seed (default 0)."),
        sim_seconds: Optional[float] = typer.Option(None, "--sim-seconds",
                                                    help="Replay: simulated seconds for a median-FLOPs model (default 0)."),
        profile: Optional[str] = typer.Option(None, "--profile", help="Train: training profile (default quick)."),
        data: Optional[str] = typer.Option(None, "--data", help="Train: the task's data (GLUE directory, ...)."),
        tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="Train: tokenizer spec."),
        max_train_samples: Optional[int] = typer.Option(None, "--max-train-samples",
                                                        help="Train: fine-tune on a fixed subset of this size."),
        train_file: Optional[Path] = TrainFileOpt,
        dev_file: Optional[Path] = DevFileOpt,
        text_columns: str = TextColumnsOpt,
        label_column: str = LabelColumnOpt,
        labels: Optional[str] = LabelsOpt,
        regression: bool = RegressionOpt,
        holdout: Optional[int] = typer.Option(None, "--holdout",
                                              help="Train: score trials on this many examples carved from train."),
        positions: Optional[str] = typer.Option(None, "--positions", help="Train: relative_key (default) or absolute."),
        pooling: Optional[str] = typer.Option(None, "--pooling",
                                              help="Train: cls or mean (default: each seed checkpoint's own)."),
        cpus_per_trial: Optional[int] = typer.Option(None, "--cpus-per-trial",
                                                     help="Cores per trial (default: the cores split between workers)."),
        gpus_per_trial: float = typer.Option(0, "--gpus-per-trial", help="GPUs per trial: 0, a fraction or a count."),
        workers: int = typer.Option(1, "--workers", min=1, help="Trials at once."),
        backend: str = typer.Option("local", "--backend", help="local (process pool) or ray."),
        address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (ray backend)."),
        budget: Optional[int] = typer.Option(None, "--budget", help="Most trials in the run, seeds included."),
        time_budget: Optional[float] = typer.Option(None, "--time-budget", help="Seconds for this invocation."),
        resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this directory."),
        out: Optional[Path] = typer.Option(None, "--out", help="New run directory (default runs/search-<time>)."),
        quiet: bool = typer.Option(False, "--quiet", help="No live view; print the final state only."),
    ) -> None:
        """Find the best model while training few: GP surrogate + overlap-constrained active learning."""
        from rich.console import Console
        from rich.live import Live

        from flexibert.cli.train import user_task
        from flexibert.search.backends import TrialResources
        from flexibert.search.config import DEFAULT_LIBRARY, ORACLES, ReplayConfig, SearchConfig, TrainConfig
        from flexibert.search.loop import run_search

        search_options = {"--task": task, "--oracle": oracle, "--acquisition": acquisition, "--beta": beta,
                          "--ci": ci, "--seed": seed}
        space_options = {"--space": space, "--rule": rule, "--library": library}
        replay_options = {"--table": table, "--sim-seconds": sim_seconds}
        train_options = {"--profile": profile, "--data": data, "--tokenizer": tokenizer,
                         "--max-train-samples": max_train_samples, "--train-file": train_file, "--dev-file": dev_file,
                         "--holdout": holdout, "--positions": positions, "--pooling": pooling}
        if resume is not None:
            given = [flag for options in (search_options, space_options, replay_options, train_options)
                     for flag, value in options.items() if value is not None]
            if given:
                raise FlexiBertError(f"--resume takes the run's config from its database; drop {given}")
            if out is not None:
                raise FlexiBertError("give --resume RUN or --out DIR, not both")
            run_dir, config = resume, None
        else:
            if task is None:
                raise FlexiBertError("--task is required for a new search")
            kind = oracle or ("replay" if table is not None else "train")
            # The default library too is stored absolute, so that it is found again on --resume.
            where = _absolute(library or Path(DEFAULT_LIBRARY)) if space is not None else _absolute(library)
            if kind == "replay":
                _refuse(kind, train_options)
                oracle_config = ReplayConfig(_absolute(table), **_given(
                    sim_seconds=sim_seconds, space=_absolute(space), rule=rule, library=where))
            elif kind == "train":
                _refuse(kind, replay_options)
                user = user_task(task, train_file, dev_file, text_columns, label_column, labels, regression, holdout)
                oracle_config = TrainConfig(_absolute(space), **_given(
                    rule=rule, library=where, profile=profile, data=data, tokenizer=tokenizer,
                    max_train_samples=max_train_samples, seed=seed, user_task=user.to_dict() if user else None,
                    holdout=holdout, positions=positions, pooling=pooling))
            else:
                raise FlexiBertError(f"unknown oracle {kind!r}; expected one of {list(ORACLES)}")
            config = SearchConfig(task, oracle_config, **_given(acquisition=acquisition, beta=beta, ci=ci, seed=seed,
                                                                budget=budget))
            run_dir = out or Path("runs") / time.strftime("search-%Y%m%d-%H%M%S")

        console = Console()
        with Live(console=console, auto_refresh=False, transient=False) as live:
            def show(progress) -> None:
                if not quiet:
                    live.update(progress_table(progress), refresh=True)

            final = run_search(run_dir, config, resume=config is None, workers=workers, backend=backend,
                               address=address, budget=budget if config is None else None, time_budget=time_budget,
                               on_progress=show, resources=TrialResources(cpus_per_trial, gpus_per_trial))
            live.update(progress_table(final), refresh=True)
        console.line()
        console.print(f"run: {run_dir}  stopped: {final.reason}")
