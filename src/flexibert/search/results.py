"""A run's results, read through one door, as Optuna's ``Study`` is.

:class:`RunResults` reads a run directory (``flexibert run``) or a search directory
(``flexibert search``) once, read-only, so it works while a search is still writing:
the trials, the best trial by its proxy score, the first failure, and, once the run
has confirmed its finalists, the finalists, the reference (the seed confirmed under the
finalists' recipe), the classical baseline and the confirmed winner. ``export``,
``report`` and the CLI read results only through it.

The one write is :func:`record_outcome`: the run's confirmation stage tells the store
what it measured after the search, as Optuna's ``set_user_attr`` does.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import numpy as np

from flexibert._common import FlexiBertError
from flexibert.search.budget import Budget
from flexibert.search.config import SearchConfig, TrainConfig
from flexibert.search.oracles import VALIDATION_PREFIX
from flexibert.search.store import RunStore, Trial, search_dir

OUTCOME_KEY = "outcome"  # the store's meta key for what the run measured after the search
#: What a confirmed model shows of itself: its scores (mean over training seeds), latency and name.
MODEL_KEYS: tuple[str, ...] = ("card", "validation", "dev", "dev_sd", "n_seeds", "latency_ms", "name", "refit")


def record_outcome(path: str | Path, **parts: Any) -> None:
    """Store ``finalists``, ``reference``, ``baseline`` (any of them) for the run at ``path``; each
    part replaces its earlier value, so a resumed stage rewrites what it recomputed."""
    with RunStore(search_dir(path)) as store:
        outcome = store.meta(OUTCOME_KEY) or {}
        outcome.update(parts)
        store.set_meta(OUTCOME_KEY, outcome)


def aggregate(card: dict[str, Any], runs: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    """One confirmed model from its runs over training seeds: mean validation and dev, the dev's spread (None
    for one seed: there is none to tell), and the first seed's checkpoint (the one exported)."""
    dev = [r["dev"] for r in runs]
    return {"card": card, "validation": statistics.fmean(r["validation"] for r in runs),
            "dev": statistics.fmean(dev), "dev_sd": statistics.stdev(dev) if len(dev) > 1 else None,
            "n_seeds": len(runs), "runs": runs, "checkpoint": runs[0]["checkpoint"], **extra}


def mean_ci95(values: list[float]) -> float | None:
    """Half-width of a 95% Student-t interval of the mean (None under two values): a handful of training seeds
    needs t's wider quantile, not the normal 1.96."""
    from scipy.stats import t

    if len(values) < 2:
        return None
    return float(t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values)))


def paired_ratio_ci95(num: list[dict[str, Any]], den: list[dict[str, Any]], key: str = "dev") -> float | None:
    """Half-width of a 95% Student-t interval of ``num``'s score over ``den``'s, paired by training seed (None
    with fewer than two seeds in common): a seed moves both models alike, and pairing takes that out."""
    a, b = ({r["seed"]: r[key] for r in runs} for runs in (num, den))
    return mean_ci95([a[s] / b[s] for s in sorted(a.keys() & b.keys()) if b[s]])


class RunResults:
    """Everything a finished or running run has measured, as plain values."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.search_dir = search_dir(self.path)
        with RunStore(self.search_dir, read_only=True) as store:
            self.config = SearchConfig.from_dict(store.meta("config"))
            self._trials = store.trials()
            self.snapshots = store.snapshots()
            self._outcome: dict[str, Any] = store.meta(OUTCOME_KEY) or {}

    # -- what was searched ---------------------------------------------------------------------------
    @property
    def train_config(self) -> TrainConfig | None:
        """The train oracle's settings (None for a replay)."""
        return self.config.oracle if isinstance(self.config.oracle, TrainConfig) else None

    @property
    def budget(self) -> Budget:
        return (self.train_config and self.train_config.limits) or Budget()

    def task(self):
        """The run's :class:`~flexibert.train.tasks.Task`, or None when this package cannot train it (a replay
        table may measure any task)."""
        from flexibert.train.user_task import resolve_task

        oc = self.train_config
        try:
            return resolve_task((oc.user_task if oc else None) or self.config.task)[0]
        except FlexiBertError:
            return None

    def metric(self) -> str:
        """What a score is: the task's one metric, the mean of several, or a replay's plain score."""
        task = self.task()
        if task is None:
            return "score"
        return task.metrics[0] if len(task.metrics) == 1 else f"mean of {', '.join(task.metrics)}"

    def costs(self, card: dict[str, Any]) -> dict[str, int]:
        """A card's parameters and forward FLOPs (sequence 128) under the run's own vocabulary and positions."""
        from flexibert.model.cost import ArchDims, flops, param_count
        from flexibert.space.design_space import ModelCard

        c, dims = ModelCard.from_dict(card), self.train_config.arch_dims() if self.train_config else ArchDims()
        return {"params": param_count(c, dims), "flops": flops(c, dims=dims)}

    def describe(self, row: dict[str, Any] | None, keys: tuple[str, ...] = MODEL_KEYS) -> dict[str, Any] | None:
        """A confirmed model as a report or a model card shows it: the ``keys`` it has, and its costs."""
        if row is None:
            return None
        return {**{k: row[k] for k in keys if row.get(k) is not None}, **self.costs(row["card"])}

    # -- trials --------------------------------------------------------------------------------------
    def trials(self, status: str | None = None) -> list[Trial]:
        """Trials by id (done ones by the order they finished in, as the store gives them)."""
        if status is None:
            return list(self._trials)
        rows = [t for t in self._trials if t.status == status]
        return sorted(rows, key=lambda t: t.done_seq) if status == "done" else rows

    def measured(self) -> list[Trial]:
        return [t for t in self.trials("done") if t.value is not None]

    def fits_budget(self, cards) -> np.ndarray:
        """Which ``cards`` the run's budget allows."""
        oc = self.train_config
        return self.budget.mask(cards, oc.arch_dims() if oc else None, oc.latency_model if oc else None)

    def ranked(self, within_budget: bool = True) -> list[Trial]:
        """Finished trials, best proxy score first; by default only those the budget allows (a seed over
        budget is trained for its children, never to win)."""
        from flexibert.space.design_space import ModelCard

        done = sorted(self.measured(), key=lambda t: -t.value)
        if within_budget and self.budget and done:
            fits = self.fits_budget([ModelCard.from_dict(t.card) for t in done])
            done = [t for t, ok in zip(done, fits) if ok]
        return done

    @property
    def best_trial(self) -> Trial | None:
        """The best finished trial within budget, by the score the search maximised."""
        ranked = self.ranked()
        return ranked[0] if ranked else None

    def dev_score(self, trial: Trial) -> float | None:
        """A trial's score on dev by the task's own rule, its validation metrics set aside (a replay's
        table value is its dev score)."""
        if self.train_config is None:
            return trial.value
        dev = {k: v for k, v in (trial.metrics or {}).items() if not k.startswith(VALIDATION_PREFIX)}
        task = self.task()
        return task.score(dev) if task is not None and dev else None

    def initial_checkpoint(self, trial: Trial) -> str | None:
        """The weights ``trial`` started from: a confirmation retrains it from there."""
        from flexibert.search.loop import initial_checkpoint

        return initial_checkpoint(self.measured(), self.config, trial)

    @property
    def first_failure(self) -> str | None:
        """The last line of the first failed trial's error: why a search with nothing done failed."""
        errors = [t.error for t in self.trials("failed") if t.error and t.error.strip()]
        return errors[0].strip().splitlines()[-1] if errors else None

    # -- after the search ------------------------------------------------------------------------------
    @property
    def finalists(self) -> list[dict[str, Any]]:
        """The confirmed finalists (full fidelity), each flagged ``winner`` or not."""
        rows = self._outcome.get("finalists") or []
        win = max(range(len(rows)), key=lambda i: rows[i]["validation"], default=None)
        return [{**r, "winner": i == win} for i, r in enumerate(rows)]

    @property
    def reference(self) -> dict[str, Any] | None:
        """The seed confirmed under the finalists' recipe: what the winner is measured against."""
        return self._outcome.get("reference")

    @property
    def baseline(self) -> dict[str, Any] | None:
        """A classical model (TF-IDF + logistic regression) fitted on the same data."""
        return self._outcome.get("baseline")

    @property
    def data(self) -> dict[str, Any] | None:
        """How the validation holdout was drawn (``method``, and ``train``, ``validation``, ``dropped`` counts)
        and, per dev split, what dev shares with train (``dev_overlap``); None for a bare search."""
        return self._outcome.get("data")

    @property
    def question(self) -> str:
        """What the run asked, as its confirmation stated it."""
        return self._outcome.get("question") or "Which model is best for this task within the budget?"

    @property
    def confirmed(self) -> bool:
        return bool(self._outcome.get("finalists"))

    @property
    def winner(self) -> dict[str, Any] | None:
        """The run's answer: the confirmed finalist best on validation, else the best trial within budget
        (``confirmed`` False). Keys: card, checkpoint, validation, dev, confirmed, and latency_ms when measured."""
        for row in self.finalists:
            if row["winner"]:
                return {**row, "confirmed": True}
        best = self.best_trial
        if best is None:
            return None
        return {"card": best.card, "checkpoint": best.checkpoint, "validation": best.value,
                "dev": self.dev_score(best), "confirmed": False}

    @property
    def retention(self) -> dict[str, float] | None:
        """The winner's score over the reference's, on dev and on validation; over several training seeds,
        ``dev_ci95`` too (:func:`paired_ratio_ci95`)."""
        win, ref = self.winner, self.reference
        if not (win and ref and win["confirmed"]) or not ref["dev"] or not ref["validation"]:
            return None
        out = {"dev": win["dev"] / ref["dev"], "validation": win["validation"] / ref["validation"]}
        ci = paired_ratio_ci95(win.get("runs") or [], ref.get("runs") or [])
        return out if ci is None else {**out, "dev_ci95": ci}

    @property
    def speedup(self) -> dict[str, float] | None:
        """The reference's measured latency over the winner's, at batch 1 and 32."""
        win, ref = self.winner, self.reference
        lw, lr = (win or {}).get("latency_ms"), (ref or {}).get("latency_ms")
        if not (lw and lr):
            return None
        return {k: lr[k] / lw[k] for k in ("batch_1", "batch_32") if lw.get(k) and lr.get(k)}

    def summary(self) -> dict[str, Any]:
        """The plain answer a run prints as its JSON line."""
        win, ref, base = self.winner, self.reference, self.baseline

        def brief(row: dict[str, Any] | None) -> dict[str, Any] | None:
            if row is None:
                return None
            return {k: row[k] for k in MODEL_KEYS if k in row}

        return {
            "best_card": win["card"] if win else None,
            "best_dev_accuracy": win["dev"] if win else None,
            "metric": self.metric(),
            "winner": brief(win),
            "reference": brief(ref),
            "retention": self.retention,
            "speedup": self.speedup,
            "baseline": {k: base[k] for k in ("name", "validation", "dev")} if base else None,
            "data": self.data,
            "finalists": [brief(r) for r in self.finalists],
            "latency_ms": (win or {}).get("latency_ms"),
            "trials_done": len(self.measured()),
        }
