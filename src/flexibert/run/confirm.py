"""The confirmation: the finalists and the reference seed retrained alike, so the answer says what was kept.

The top ``k`` trials within budget by proxy score, and the reference (every imported seed,
or the best seed on the scratch and MLM routes), are each retrained from the weights they
started from, under one recipe: the same data (the whole training split less the holdout,
or ``confirm.max_train_samples``), epochs, learning rate and training seeds. The winner is
the finalist best on validation; dev is only reported. With ``confirm.refit`` the winner and
the reference are then retrained on the whole training split, the holdout included, and their
dev scores are those of the refitted models; their validation scores stay the held-out ones
the choice was made on. A model that is both a seed and a finalist is trained once. Each
retraining keeps its own directory, so a killed confirmation resumes where it stood; the
measured latency of the winner and of the reference goes beside their scores. Everything is
told to the run's store through :func:`record_outcome`.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
from pathlib import Path
from typing import Any

from flexibert.run.stages import Run


def _retrain(run: Run, oracle, trial, init: str | None, seed: int, label: str, teacher: str | None = None,
             refit: bool = False) -> dict[str, Any]:
    """One confirmed training of ``trial``'s card with training seed ``seed`` (kept if already done), distilled
    from ``teacher`` when given; with ``refit``, on the holdout too."""
    from flexibert.train.trial import TrialResult, train_trial

    c = run.config.confirm
    workdir = (run.dir / "confirm" / f"{trial.card_hash[:8]}-seed{seed}{'-refit' if refit else ''}").resolve()
    finished = [d for d in sorted(workdir.glob("attempt-*")) if (d / "result.json").exists()]
    if finished:
        r = TrialResult.load(finished[-1] / "result.json")
    else:
        run.reporter.log(f"{'refitting' if refit else 'confirming'} {label} (seed {seed}): {trial.card} "
                         f"(proxy {trial.value:.4f})")
        distill = None
        if teacher is not None:
            from flexibert.train.distill import Distillation

            distill = Distillation(Path(teacher), **dataclasses.asdict(c.distill))
        spec = oracle.spec(trial.card, init, os.cpu_count(), c.max_train_samples, full=True, seed=seed,
                           distill=distill, refit=refit, epochs=c.epochs, lr=c.lr)
        r = train_trial(spec, workdir / f"attempt-{len(list(workdir.glob('attempt-*'))) + 1}")
    task = run.config.task_and_source[0]
    return {"seed": seed, "validation": None if refit else r.score, "dev": task.score(r.metrics),
            "dev_metrics": r.metrics, "num_train": r.num_train, "checkpoint": r.checkpoint, "wall_s": round(r.wall_s, 1)}


def _references(run: Run, results) -> list:
    """The seeds to confirm as the reference: every imported seed, else the best seed by proxy."""
    from flexibert.space.design_space import ModelCard

    seeds = set(results.train_config.seed_checkpoints) if results.train_config else set()
    trials = [t for t in results.ranked(within_budget=False) if ModelCard.from_dict(t.card).key in seeds]
    if not trials:  # plain scratch: the study's seed shapes were trained from scratch
        from flexibert.space.seeds import SEED_CARDS

        keys = {c.key for c in SEED_CARDS.values()}
        trials = [t for t in results.ranked(within_budget=False) if ModelCard.from_dict(t.card).key in keys]
    return trials if run.config.seeds.route == "import-bert" else trials[:1]


def confirm_stage(run: Run) -> dict[str, Any]:
    """Retrain the finalists and the reference under one recipe; record them and their latencies."""
    from flexibert.model.latency import checkpoint_latency
    from flexibert.search.oracles import TrainOracle
    from flexibert.search.results import RunResults, aggregate, record_outcome
    from flexibert.space.design_space import ModelCard

    c = run.config.confirm
    if c.k == 0:
        return {"finalists": 0}
    results = RunResults(run.dir)
    oracle = TrainOracle(results.config.task, results.config.oracle)
    finalists = results.ranked()[: c.k]
    references = _references(run, results) if c.reference else []
    # The reference first: with distillation it is the teacher. A model both seed and finalist is trained once.
    todo = list({t.card_hash: t for t in references + finalists}.values())
    confirmed: dict[str, dict[str, Any]] = {}
    teacher = None
    for i, t in enumerate(todo):
        run.reporter.stage("confirmation", i, len(todo))
        init = results.initial_checkpoint(t)
        runs = [_retrain(run, oracle, t, init, seed, f"{i + 1}/{len(todo)}", teacher) for seed in c.seeds]
        confirmed[t.card_hash] = aggregate(t.card, runs, proxy=t.value, distilled=teacher is not None)
        if c.distill is not None and i == len(references) - 1:  # the best reference teaches the finalists
            teacher = max((confirmed[r.card_hash] for r in references), key=lambda r: r["validation"])["checkpoint"]
    run.reporter.stage("confirmation", len(todo), len(todo))
    rows = [confirmed[t.card_hash] for t in finalists]
    reference = max((confirmed[t.card_hash] for t in references), key=lambda r: r["validation"], default=None)
    winner = max(rows, key=lambda r: r["validation"], default=None)
    chosen = {t.card_hash: t for t in todo if any(confirmed[t.card_hash] is m for m in (winner, reference))}
    if c.refit and oracle.holdout is not None:
        for i, (h, t) in enumerate(chosen.items()):
            run.reporter.stage("refit", i, len(chosen))
            tutor = teacher if confirmed[h]["distilled"] else None
            init = results.initial_checkpoint(t)
            _refit(confirmed[h], [_retrain(run, oracle, t, init, seed, f"{i + 1}/{len(chosen)}", tutor, refit=True)
                                  for seed in c.seeds])
        run.reporter.stage("refit", len(chosen), len(chosen))
    for h in chosen:
        confirmed[h]["latency_ms"] = checkpoint_latency(confirmed[h]["checkpoint"], run.threads())
    if reference is not None:  # the seed's own name: its checkpoint's folder
        path = results.train_config.seed_checkpoints.get(ModelCard.from_dict(reference["card"]).key)
        reference["name"] = Path(path).name if path else None
    record_outcome(run.dir, finalists=rows, reference=reference, question=_question(run, reference))
    return {"finalists": len(rows), "reference": reference is not None}


def _refit(row: dict[str, Any], runs: list[dict[str, Any]]) -> None:
    """Put the refitted runs' dev scores and checkpoint in ``row``; its validation stays the held-out one, and the
    held-out runs are kept under ``heldout``."""
    dev = [r["dev"] for r in runs]
    row["heldout"] = {k: row[k] for k in ("dev", "dev_sd", "runs")}
    row.update(dev=statistics.fmean(dev), dev_sd=statistics.stdev(dev) if len(dev) > 1 else None, runs=runs,
               checkpoint=runs[0]["checkpoint"], refit=True)


def _question(run: Run, reference: dict[str, Any] | None) -> str:
    """What the run asks: of an imported encoder, which of its family keeps its accuracy; else, which model of
    the space is best within the budget, measured against the best seed."""
    if run.config.seeds.route == "import-bert" and reference is not None:
        ratio = run.config.budget.max_latency_ratio
        within = "" if ratio is None else f" at no more than {ratio:g}x its latency"
        return (f"Which is the smallest, fastest member of {reference.get('name') or 'the seed'}'s family that "
                f"keeps its accuracy{within}?")
    return "Which model of the space is best for this task within the budget, and what does it keep of the best seed?"
