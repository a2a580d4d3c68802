"""Oracles: what a worker runs to measure one model.

``replay`` answers from a table of measured results (the study's JSON format), with
optional simulated durations so that a whole search is asynchronous for real yet
runs in seconds. ``train`` fine-tunes the model with :func:`flexibert.train.trial.train_trial`.
Both are plain picklable objects called as ``oracle(request) -> TrialOutcome`` inside
a worker process, so any backend can run either. ``oracle.recover(workdir)`` takes back
the outcome of an attempt that finished its work but died before reporting it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from flexibert._common import FlexiBertError
from flexibert.search.config import TrainConfig

VALIDATION_PREFIX = "validation_"  # a trial's validation metrics, stored beside its dev metrics
from flexibert.search.tables import MeasuredTable
from flexibert.space.design_space import ModelCard


@dataclass(frozen=True)
class TrialRequest:
    """One unit of work, as shipped to a worker."""

    trial_id: int
    card: dict[str, Any]
    workdir: str
    source_checkpoint: str | None = None
    num_threads: int | None = None


@dataclass(frozen=True)
class TrialOutcome:
    """What a worker sends back."""

    value: float  # the task's main score, the quantity the search maximises
    metrics: dict[str, float] = field(default_factory=dict)
    checkpoint: str | None = None
    overlap: float | None = None  # the fraction of weights actually transferred, if measured
    wall_s: float = 0.0


# -- oracles ---------------------------------------------------------------------------------------
class Oracle(Protocol):
    """What a search runs per trial, in a worker, and asks about an attempt that never reported."""

    def __call__(self, request: TrialRequest) -> TrialOutcome: ...

    def recover(self, workdir: str) -> TrialOutcome | None:
        """The outcome an earlier attempt left complete and valid in ``workdir``, else None."""
        ...


class ReplayOracle:
    """Look a card's value up in a measured table; optionally sleep for a simulated training time.

    ``durations`` maps card keys to seconds; :meth:`from_table` makes them proportional to the
    model's FLOPs (``sim_seconds`` for a model of median cost), so bigger models finish later.
    """

    def __init__(self, values: dict[str, float], durations: dict[str, float] | None = None) -> None:
        self.values = dict(values)
        self.durations = dict(durations or {})

    @classmethod
    def from_table(cls, table: MeasuredTable, sim_seconds: float = 0.0) -> "ReplayOracle":
        if sim_seconds < 0:
            raise FlexiBertError(f"simulated seconds must be >= 0, got {sim_seconds}")
        values = table.value_of()
        durations = None
        if sim_seconds > 0:
            from flexibert.model.cost import flops

            cost = {table.cards[i].key: flops(table.cards[i]) for i in table.measured}
            median = float(np.median(list(cost.values())))
            durations = {k: sim_seconds * c / median for k, c in cost.items()}
        return cls(values, durations)

    def __call__(self, request: TrialRequest) -> TrialOutcome:
        t0 = time.perf_counter()
        key = ModelCard.from_dict(request.card).key
        if key not in self.values:
            raise FlexiBertError(f"replay: the table has no measured value for card {key}")
        if self.durations.get(key):
            time.sleep(self.durations[key])
        value = self.values[key]
        return TrialOutcome(value=value, metrics={"score": value}, wall_s=time.perf_counter() - t0)

    def recover(self, workdir: str) -> TrialOutcome | None:
        """A replay writes nothing: there is never an outcome to take back."""
        return None


class TrainOracle:
    """Fine-tune the card (from the source checkpoint when there is one) with ``train_trial``.

    Every trial of a search uses the same tokenizer (the given one, else the one trained on
    the task's text and cached), the same position scheme and the same validation holdout,
    so any trained model can pass its weights to another and all are scored alike.
    """

    def __init__(self, task: str, config: TrainConfig, cache_dir: str | None = None) -> None:
        self.task, self.config, self.cache_dir = task, config, cache_dir

    def spec(self, card: dict[str, Any], init: str | None, num_threads: int | None = None,
             max_train_samples: int | None = None, full: bool = False, seed: int | None = None, distill=None,
             refit: bool = False, **profile: Any):
        """The :class:`TrialSpec` of ``card``: the search's fidelity, or with ``full`` the whole training split
        (less the holdout; with ``refit``, the holdout too); ``seed``, a teacher (``distill``) and ``profile``
        overrides (e.g. ``epochs``, ``lr``) for a confirmation."""
        from flexibert.train.profiles import get_profile
        from flexibert.train.trial import TrialSpec
        from flexibert.train.user_task import resolve_task

        c = self.config
        task, data = resolve_task(c.user_task or self.task, c.data)
        subset = max_train_samples if full else (max_train_samples or c.max_train_samples)
        prof = get_profile(c.profile, max_seq_len=c.max_seq_len, **profile)
        if subset is not None:
            prof = get_profile(prof, max_train_samples=subset)
        elif prof.max_train_samples is not None:
            prof = dataclasses.replace(prof, max_train_samples=None)
        return TrialSpec(card, task, prof, init=init, data=data, tokenizer=c.tokenizer,
                         seed=c.seed if seed is None else seed, num_threads=num_threads, cache_dir=self.cache_dir,
                         positions=c.positions, pooling=c.pooling, holdout=None if refit else self.holdout,
                         subset=c.subset,
                         layer_map=c.layer_map, ffn_select=c.ffn_select, distill=distill)

    @property
    def holdout(self):
        """The search's validation split, a :class:`~flexibert.train.holdout.Holdout` (None without one)."""
        from flexibert.train.holdout import Holdout

        c = self.config
        return None if c.holdout is None else Holdout(c.holdout, c.holdout_split)

    def __call__(self, request: TrialRequest) -> TrialOutcome:
        from flexibert.train.trial import train_trial

        r = train_trial(self.spec(request.card, request.source_checkpoint, request.num_threads), request.workdir)
        return _outcome(r)

    def recover(self, workdir: str) -> TrialOutcome | None:
        """The outcome of a trial that wrote ``result.json`` and its checkpoint, then died before reporting.

        None unless the result reads and the checkpoint it names loads: a torn or corrupt
        attempt is trained again rather than trusted.
        """
        path = Path(workdir) / "result.json"
        if not path.is_file():
            return None  # the common case, decided before torch is imported
        from flexibert.model.checkpoint import load_checkpoint
        from flexibert.train.trial import TrialResult

        try:
            r = TrialResult.load(path)
            if not np.isfinite(r.score):
                return None
            load_checkpoint(r.checkpoint)
        except (FlexiBertError, OSError, TypeError, ValueError):  # anything amiss: train again
            return None
        return _outcome(r)


def _outcome(r) -> TrialOutcome:
    """A trial's result as the search records it; the validation metrics, when any, beside dev's."""
    metrics = dict(r.metrics)
    metrics.update({f"{VALIDATION_PREFIX}{k}": v for k, v in (r.validation or {}).items()})
    return TrialOutcome(value=float(r.score), metrics=metrics, checkpoint=r.checkpoint, overlap=float(r.overlap),
                        wall_s=float(r.wall_s))
