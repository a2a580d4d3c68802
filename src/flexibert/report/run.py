"""Turn a run directory (space library + search database) into the report's plain input, and write it.

The report package knows nothing of storage; this module is the one place that
reads a run for it: measured values from the trials, predictions from the
surrogate refitted with the last snapshot's kernel, and held-out quality over
the search from the snapshots.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from flexibert._common import FlexiBertError
from flexibert.report import ReportData, ReportFiles, write_report


def run_report_data(run_dir: str | Path) -> ReportData:
    from flexibert.search.store import RunStore
    from flexibert.search.surrogate import GPSurrogate
    from flexibert.space.library import SpaceLibrary
    from flexibert.space.seeds import SEED_CARDS
    from flexibert.train.tasks import get_task

    run_dir = Path(run_dir)
    stages_path = run_dir / "stages.json"
    if not stages_path.exists():
        raise FlexiBertError(f"{run_dir} is not a FlexiBERT run directory (stages.json missing)")
    stages = json.loads(stages_path.read_text())
    lib = SpaceLibrary.open(stages["space"])
    with RunStore(run_dir / "search") as store:
        done = [t for t in store.trials("done") if t.value is not None]
        snapshots = store.snapshots()
        config = store.meta("config", {})
    if not done:
        raise FlexiBertError(f"{run_dir}: no finished trial to report")
    measured = {t.card_index: float(t.value) for t in done}
    x = lib.embeddings
    idx = np.fromiter(measured, dtype=int)
    y = np.fromiter(measured.values(), dtype=float)
    last = snapshots[-1] if snapshots else None
    if len(idx) >= 2:
        theta = last["theta"] if last else None
        gp = GPSurrogate(theta=theta).fit(x[idx], y)
        mean, std = gp.predict(x)
    else:
        mean, std = np.full(len(x), y.mean()), np.zeros(len(x))
    where = {c.key: i for i, c in enumerate(lib.cards)}
    quality = [
        {"n_trained": s["n_trained"], "spearman": s["spearman"], "kendall": s["kendall"], "mae": s["mae"]}
        for s in snapshots
        if s.get("spearman") is not None
    ]
    task = get_task(config.get("task", "sst2"))
    return ReportData(
        cards=lib.cards, embeddings=x, measured=measured, predicted_mean=mean, predicted_std=std,
        seeds=[where[c.key] for c in SEED_CARDS.values() if c.key in where],
        sweep=lib.sweep, dissimilarity=lib.dissimilarity, quality=quality,
        task=task.name, metric_name=task.metrics[0] if len(task.metrics) == 1 else "GLUE score",
        title=f"FlexiBERT: {run_dir.name} on {task.name}",
    )


def write_run_report(run_dir: str | Path, out_dir: str | Path | None = None) -> ReportFiles:
    """Write figures, tables and the interactive HTML of a run (default ``<run>/report``)."""
    run_dir = Path(run_dir)
    return write_report(run_report_data(run_dir), Path(out_dir) if out_dir else run_dir / "report")
