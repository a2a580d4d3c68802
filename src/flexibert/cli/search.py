"""``flexibert search``: asynchronous active learning over a space, with a live view.

A search is described by a YAML file holding a stored search config's fields (``task``,
``oracle: {kind, ...}``, ``acquisition``, ``budget``, ...) plus the trial resources
``cpus_per_trial``/``gpus_per_trial``; the common keys have flags, and ``--set KEY=VALUE``
overrides any single key (``--set oracle.profile=paper``, ``--set beta=1``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, List, Optional

import typer

from flexibert._common import FlexiBertError, parse_yaml

RESOURCES = ("cpus_per_trial", "gpus_per_trial")
FLAG_KEYS = {"--task": "task", "--oracle": "oracle.kind", "--table": "oracle.table", "--space": "oracle.space",
             "--acquisition": "acquisition", "--budget": "budget"}  # the flags that stand for a config key
PATH_KEYS = ("table", "space", "library", "data")  # oracle keys stored absolute: a resumed run may start elsewhere


def search_table(state):
    """The live view of a search: trials, best so far, max sigma, held-out quality, threshold."""
    from rich.table import Table

    t = Table(title="flexibert search", show_header=False)
    t.add_column(style="bold")
    t.add_column()
    t.add_row("trials", f"{state.done} done, {state.running} running, {state.queued} queued, {state.failed} failed")
    if state.best_value is not None:
        t.add_row("best so far", f"{state.best_value:.4f}  {state.best_card}")
    if state.max_sigma is not None:
        t.add_row("max sigma", f"{state.max_sigma:.5f}  (stop when 1.96 sigma = {1.96 * state.max_sigma:.5f}"
                               f" < {state.ci})")
    h = state.held_out
    t.add_row("held-out", "-" if h is None else
              f"Spearman {h.spearman:.3f}, Kendall {h.kendall:.3f}, MAE {h.mae:.4f} ({h.folds}-fold CV, n={h.n})")
    t.add_row("overlap threshold", f"{state.threshold:.2f}")
    t.add_row("elapsed", f"{state.elapsed:.1f} s")
    if state.reason:
        t.add_row("stopped", state.reason)
    return t


def _assign(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set ``a.b=value`` in a nested mapping."""
    *parents, key = dotted.split(".")
    for p in parents:
        node = raw.setdefault(p, {})
        if not isinstance(node, dict):
            raise FlexiBertError(f"--set {dotted}: '{p}' is not a section")
        raw = node
    raw[key] = value


def parse_overrides(pairs: list[str]) -> list[tuple[str, Any]]:
    """``KEY=VALUE`` pairs, each value read as YAML (numbers, booleans, lists, null)."""
    import yaml

    out = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise FlexiBertError(f"--set {pair!r}: expected KEY=VALUE, e.g. oracle.profile=paper")
        try:
            out.append((key.strip(), parse_yaml(value)))
        except yaml.YAMLError:
            raise FlexiBertError(f"--set {pair!r}: the value is not valid YAML") from None
    return out


def new_config(config_file: Path | None, flags: dict[str, Any], sets: list[str]):
    """The search config and trial resources from a YAML file, the flags and ``--set`` overrides, checked once."""
    from flexibert._common import read_yaml
    from flexibert.search.backends import TrialResources
    from flexibert.search.config import DEFAULT_LIBRARY, SCHEMA, SearchConfig

    raw: dict[str, Any] = {}
    base = Path.cwd()
    if config_file is not None:
        raw = read_yaml(config_file, f"search config not found: {config_file}") or {}
        if not isinstance(raw, dict):
            raise FlexiBertError(f"search config {config_file} must be a mapping")
        base = config_file.resolve().parent
    oracle = raw.setdefault("oracle", {})
    if not isinstance(oracle, dict):
        raise FlexiBertError("search config: 'oracle' must be a mapping with a 'kind'")
    for key, value in flags.items():
        if value is not None:
            _assign(raw, key, str(value.resolve()) if isinstance(value, Path) else value)
    for key, value in parse_overrides(sets):
        _assign(raw, key, value)
    oracle.setdefault("kind", "replay" if oracle.get("table") else "train")
    if oracle.get("space") and not oracle.get("library"):
        oracle["library"] = DEFAULT_LIBRARY  # stored absolute too, so that it is found again on --resume
    for key in PATH_KEYS:
        if isinstance(oracle.get(key), str) and (key != "data" or (base / oracle[key]).exists()):
            oracle[key] = str((base / oracle[key]).resolve())
    if not raw.get("task"):
        raise FlexiBertError("--task is required for a new search (or 'task:' in --config)")
    if oracle.get("user_task"):  # the user's files, resolved against the config's folder and checked now
        from flexibert.train.user_task import UserTask

        oracle["user_task"] = UserTask.from_mapping(oracle["user_task"], base, holdout=oracle.get("holdout")).to_dict()
    resources = TrialResources(*(raw.pop(k, d) for k, d in zip(RESOURCES, (None, 0))))
    return SearchConfig.from_dict({"schema": SCHEMA, **raw}), resources  # a new search: today's schema


def register(app: typer.Typer) -> None:
    @app.command("search")
    def search(
        config: Optional[Path] = typer.Option(None, "--config", help="Search YAML: a stored config's keys "
                                              "(task, oracle: {kind, ...}, acquisition, budget, ...)."),
        set_: Optional[List[str]] = typer.Option(None, "--set", help="KEY=VALUE override, repeatable "
                                                  "(oracle.profile=paper, beta=1, cpus_per_trial=4)."),
        task: Optional[str] = typer.Option(None, "--task", help="Task to maximise (sst2, qnli, ...; a replay table's key)."),
        oracle: Optional[str] = typer.Option(None, "--oracle", help="train or replay (default: replay with --table)."),
        table: Optional[Path] = typer.Option(None, "--table", help="Replay: measured table JSON (the study's format)."),
        space: Optional[Path] = typer.Option(None, "--space", help="Design-space YAML (train: the candidates)."),
        acquisition: Optional[str] = typer.Option(None, "--acquisition", help="ucb (default), ei, uncertainty or random."),
        budget: Optional[int] = typer.Option(None, "--budget", help="Most trials in the run, seeds included."),
        workers: int = typer.Option(1, "--workers", min=1, help="Trials at once."),
        backend: str = typer.Option("local", "--backend", help="local (process pool) or ray."),
        address: Optional[str] = typer.Option(None, "--address", help="Ray cluster address (ray backend)."),
        time_budget: Optional[float] = typer.Option(None, "--time-budget", help="Seconds for this invocation."),
        resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this directory."),
        out: Optional[Path] = typer.Option(None, "--out", help="New run directory (default runs/search-<time>)."),
        quiet: bool = typer.Option(False, "--quiet", help="No live view; print the final state only."),
    ) -> None:
        """Find the best model while training few: GP surrogate + overlap-constrained active learning."""
        from flexibert.search.backends import TrialResources

        flags = {"--task": task, "--oracle": oracle, "--table": table, "--space": space, "--acquisition": acquisition,
                 "--budget": budget, "--config": config, "--set": set_ or None}
        if resume is not None:
            given = [flag for flag, v in flags.items() if v is not None and flag != "--budget"]
            if given:
                raise FlexiBertError(f"--resume takes the run's config from its database; drop {given}")
            if out is not None:
                raise FlexiBertError("give --resume RUN or --out DIR, not both")
            run_dir, search_config, resources = resume, None, TrialResources()
        else:
            keys = {FLAG_KEYS[f]: v for f, v in flags.items() if f in FLAG_KEYS}
            search_config, resources = new_config(config, keys, set_ or [])
            run_dir = out or Path("runs") / time.strftime("search-%Y%m%d-%H%M%S")
        _run(run_dir, search_config, workers, backend, address, budget if resume else None, time_budget, resources,
             quiet)


def _run(run_dir, config, workers, backend, address, budget, time_budget, resources, quiet) -> None:
    """Run the search with a live view; on exit, the directory and why it stopped."""
    from rich.console import Console
    from rich.live import Live

    from flexibert.search.loop import run_search

    console = Console()
    with Live(console=console, auto_refresh=False, transient=False) as live:
        def show(state) -> None:
            if not quiet:
                live.update(search_table(state), refresh=True)

        final = run_search(run_dir, config, resume=config is None, workers=workers, backend=backend, address=address,
                           budget=budget, time_budget=time_budget, on_progress=show, resources=resources)
        live.update(search_table(final), refresh=True)
    console.line()
    console.print(f"run: {run_dir}  stopped: {final.reason}")
