"""Turn a run's results (:class:`~flexibert.search.results.RunResults`) into the report's plain input, and write it.

The report package knows nothing of storage; this module is the one place that reads a
run for it, through the results door: measured values from the trials, predictions from
the surrogate refitted with the last snapshot's kernel, held-out quality over the search,
and, once the run has confirmed its finalists, the answer (winner, reference, retention,
speed-up, baseline). It reads read-only, so a live search can be reported.

Any search directory works: one made by ``flexibert run`` (the search is in ``search/``)
or by ``flexibert search``. The cards and embeddings are those the search used: the replay
table's own when it has embeddings, else the space library its config names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from flexibert._common import FlexiBertError
from flexibert.report import ReportData, ReportFiles, write_report
from flexibert.report.data import Answer


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


def _answer(results) -> Answer | None:
    """The confirmed answer in the report's terms, or None before a confirmation."""
    if not results.confirmed:
        return None
    finalists = [{**results.describe(r, ("card", "validation", "dev", "latency_ms")), "proxy": r["proxy"],
                  "winner": r["winner"]} for r in results.finalists]
    return Answer(question=results.question, winner=results.describe(results.winner),
                  reference=results.describe(results.reference),
                  retention=results.retention, speedup=results.speedup, finalists=finalists,
                  baseline=results.baseline, metric=results.metric(), data=results.data)


def run_report_data(run_dir: str | Path) -> ReportData:
    """The report's input for a run or search directory, read without writing to it."""
    from flexibert.search.loop import surrogate_X
    from flexibert.search.results import RunResults
    from flexibert.search.surrogate import GPSurrogate
    from flexibert.space.seeds import SEED_CARDS

    run_dir = Path(run_dir)
    results = RunResults(run_dir)
    done = results.measured()
    if not done:
        raise FlexiBertError(f"{run_dir}: no finished trial to report")
    config = results.config
    space = _space(config)
    cards = space["cards"]
    emb = np.asarray(space["embeddings"], dtype=float)
    x = surrogate_X(config, cards, emb)  # the surrogate's inputs, as in the search
    measured = {t.card_index: float(t.value) for t in done}
    idx = np.fromiter(measured, dtype=int)
    if idx.max() >= len(cards):
        raise FlexiBertError(f"{run_dir}: its trials index {idx.max() + 1} models, its space has {len(cards)}")
    y = np.fromiter(measured.values(), dtype=float)
    snapshots = results.snapshots
    if len(idx) >= 2:
        gp = GPSurrogate(theta=snapshots[-1]["theta"] if snapshots else None).fit(x[idx], y)
        mean, std = gp.predict(x)
    else:
        mean, std = np.full(len(x), y.mean()), np.zeros(len(x))
    quality = [{k: s[k] for k in ("n_trained", "spearman", "kendall", "mae")}
               for s in snapshots if s.get("spearman") is not None]
    where = {c.key: i for i, c in enumerate(cards)}
    seeds = [where[c.key] for c in SEED_CARDS.values() if c.key in where]
    metric = results.metric()
    extra: dict[str, Any] = {}
    oc = results.train_config
    if oc is not None:
        extra = _costs(oc, cards)
        if oc.seed_checkpoints:
            seeds = [where[key] for key in oc.seed_checkpoints if key in where]
        if oc.holdout:
            metric = f"validation {metric}"  # what the search scored: dev is only reported
    task = results.config.task
    return ReportData(
        cards=cards, embeddings=emb, measured=measured, predicted_mean=mean, predicted_std=std, seeds=seeds,
        sweep=space.get("sweep", {}), dissimilarity=space.get("dissimilarity"), quality=quality,
        task=task, metric_name=metric, title=f"FlexiBERT: {run_dir.resolve().name} on {task}",
        answer=_answer(results), **extra,
    )


def _costs(oc, cards) -> dict[str, Any]:
    """Parameters, FLOPs, predicted latency and the budget of a training run's cards, under its own sizes."""
    from flexibert.model.cost import flops, param_count

    dims = oc.arch_dims()
    out: dict[str, Any] = {"params": [param_count(c, dims) for c in cards],
                           "flops": [flops(c, dims=dims) for c in cards], "latency_ms": None}
    if oc.latency_model and Path(oc.latency_model).is_file():
        from flexibert.model.latency import LatencyModel

        out["latency_ms"] = LatencyModel.load(oc.latency_model).predict(cards)
    if oc.limits:
        out["budget"] = oc.limits.to_dict()
        out["fits_budget"] = oc.limits.mask(cards, dims, oc.latency_model)
    return out


def write_run_report(run_dir: str | Path, out_dir: str | Path | None = None) -> ReportFiles:
    """Write figures, tables and the interactive HTML of a run or search (default ``<dir>/report``)."""
    run_dir = Path(run_dir)
    return write_report(run_report_data(run_dir), Path(out_dir) if out_dir else run_dir / "report")

