"""Turn a search (its database and the space it ranged over) into the report's plain input, and write it.

The report package knows nothing of storage; this module is the one place that
reads a search for it: measured values from the trials, predictions from the
surrogate refitted with the last snapshot's kernel, and held-out quality over
the search from the snapshots. It reads read-only, so a live search can be reported.

Any search directory works: one made by ``flexibert run`` (the search is in
``search/``) or by ``flexibert search``. The cards and embeddings are those the
search used, found from its stored config: the replay table's own when it has
embeddings, else the space library the config names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from flexibert._common import FlexiBertError
from flexibert.report import ReportData, ReportFiles, write_report


def _space(config) -> dict[str, Any]:
    """Cards and embeddings (plus sweep and dissimilarity when a space library has them) of a search."""
    from flexibert.search.config import ReplayConfig, space_library
    from flexibert.search.tables import load_table

    oc = config.oracle
    if isinstance(oc, ReplayConfig):
        table = load_table(oc.table, config.task)
        if table.embeddings is not None:
            return {"cards": table.cards, "embeddings": table.embeddings}
    lib = space_library(oc, build=False)
    return {"cards": lib.cards, "embeddings": lib.embeddings, "sweep": lib.sweep, "dissimilarity": lib.dissimilarity}


def _task(name: str) -> tuple[str, str]:
    """The task's display name and metric; a replay table may measure a task this package cannot train."""
    from flexibert.train.tasks import get_task

    try:
        task = get_task(name)
    except FlexiBertError:
        return name, "score"
    return task.name, task.metrics[0] if len(task.metrics) == 1 else "GLUE score"


def run_report_data(run_dir: str | Path) -> ReportData:
    """The report's input for a run or search directory, read without writing to it."""
    from flexibert.search.config import SearchConfig, TrainConfig
    from flexibert.search.loop import surrogate_X
    from flexibert.search.store import RunStore, search_dir
    from flexibert.search.surrogate import GPSurrogate
    from flexibert.space.seeds import SEED_CARDS

    run_dir = Path(run_dir)
    with RunStore(search_dir(run_dir), read_only=True) as store:
        done = [t for t in store.trials("done") if t.value is not None]
        snapshots = store.snapshots()
        config = SearchConfig.from_dict(store.meta("config"))
    if not done:
        raise FlexiBertError(f"{run_dir}: no finished trial to report")
    space = _space(config)
    cards = space["cards"]
    emb = np.asarray(space["embeddings"], dtype=float)
    x = surrogate_X(config, cards, emb)  # the surrogate's inputs, as in the search
    measured = {t.card_index: float(t.value) for t in done}
    idx = np.fromiter(measured, dtype=int)
    if idx.max() >= len(cards):
        raise FlexiBertError(f"{run_dir}: its trials index {idx.max() + 1} models, its space has {len(cards)}")
    y = np.fromiter(measured.values(), dtype=float)
    last = snapshots[-1] if snapshots else None
    if len(idx) >= 2:
        theta = last["theta"] if last else None
        gp = GPSurrogate(theta=theta).fit(x[idx], y)
        mean, std = gp.predict(x)
    else:
        mean, std = np.full(len(x), y.mean()), np.zeros(len(x))
    where = {c.key: i for i, c in enumerate(cards)}
    quality = [
        {"n_trained": s["n_trained"], "spearman": s["spearman"], "kendall": s["kendall"], "mae": s["mae"]}
        for s in snapshots
        if s.get("spearman") is not None
    ]
    task, metric = _task(config.task)
    oc = config.oracle
    seeds = [where[c.key] for c in SEED_CARDS.values() if c.key in where]
    params = latency = None
    if isinstance(oc, TrainConfig):
        from flexibert.model.cost import param_count

        if oc.seed_checkpoints:
            seeds = [where[key] for key in oc.seed_checkpoints if key in where]
        params = [param_count(c, oc.arch_dims()) for c in cards]
        if oc.latency_model and Path(oc.latency_model).is_file():
            from flexibert.model.latency import LatencyModel

            latency = LatencyModel.load(oc.latency_model).predict(cards)
        if oc.holdout:
            metric = f"validation {metric}"  # what the search scored: dev is only reported
    return ReportData(
        cards=cards, embeddings=emb, measured=measured, predicted_mean=mean, predicted_std=std, seeds=seeds,
        sweep=space.get("sweep", {}), dissimilarity=space.get("dissimilarity"), quality=quality,
        task=task, metric_name=metric, title=f"FlexiBERT: {run_dir.resolve().name} on {task}", params=params,
        latency_ms=latency,
    )


def write_run_report(run_dir: str | Path, out_dir: str | Path | None = None) -> ReportFiles:
    """Write figures, tables and the interactive HTML of a run or search (default ``<dir>/report``)."""
    run_dir = Path(run_dir)
    return write_report(run_report_data(run_dir), Path(out_dir) if out_dir else run_dir / "report")
