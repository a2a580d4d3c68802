"""Oracles: what a worker runs to measure one model.

``replay`` answers from a table of measured results (the study's JSON format), with
optional simulated durations so that a whole search is asynchronous for real yet
runs in seconds. ``train`` fine-tunes the model with :func:`flexibert.train.trial.train_trial`.
Both are plain picklable objects called as ``oracle(request) -> TrialOutcome`` inside
a worker process, so any backend can run either.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flexibert._common import FlexiBertError, read_json
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


# -- measured tables -------------------------------------------------------------------------------
def _task_key(name: str) -> str:
    return str(name).lower().replace("-", "").replace("_", "")


@dataclass(frozen=True)
class MeasuredTable:
    """A table of cards with a measured value per task (NaN where never measured)."""

    path: str
    task: str  # the task's spelling in the table
    cards: list[ModelCard]
    values: np.ndarray
    hashes: list[str] | None = None
    embeddings: np.ndarray | None = None
    neighbors: np.ndarray | None = None  # indices of each card's nearest cards, from the table's hash lists

    @property
    def measured(self) -> np.ndarray:
        return np.flatnonzero(~np.isnan(self.values))

    def value_of(self) -> dict[str, float]:
        """Measured values keyed by card key."""
        return {self.cards[i].key: float(self.values[i]) for i in self.measured}


def load_table(path: str | Path, task: str) -> MeasuredTable:
    """Read a study-format JSON: ``model_dicts`` and ``accuracies`` (one ``{task: value|null}`` per card),
    optionally ``hashes``, ``embeddings`` and ``neighbors`` (lists of hashes)."""
    path = Path(path)
    data = read_json(path, f"measured table not found: {path}")
    if not isinstance(data, dict):
        raise FlexiBertError(f"measured table {path}: expected a JSON object")
    for key in ("model_dicts", "accuracies"):
        if not isinstance(data.get(key), list):
            raise FlexiBertError(f"measured table {path}: missing list '{key}'")
    dicts, accs = data["model_dicts"], data["accuracies"]
    if len(dicts) != len(accs):
        raise FlexiBertError(f"measured table {path}: {len(dicts)} model_dicts but {len(accs)} accuracies")
    cards = []
    for i, d in enumerate(dicts):
        try:
            cards.append(ModelCard.from_dict(d))
        except FlexiBertError as e:
            raise FlexiBertError(f"measured table {path}: model_dicts[{i}]: {e}") from None
    names = {_task_key(k): k for a in accs if isinstance(a, dict) for k in a}
    if _task_key(task) not in names:
        raise FlexiBertError(f"measured table {path}: no task {task!r}; it has {sorted(names.values())}")
    name = names[_task_key(task)]
    values = np.full(len(cards), np.nan)
    for i, a in enumerate(accs):
        v = a.get(name) if isinstance(a, dict) else None
        if v is not None:
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not np.isfinite(v):
                raise FlexiBertError(f"measured table {path}: accuracies[{i}]['{name}'] is not a number: {v!r}")
            values[i] = float(v)
    if not np.isfinite(values).any():
        raise FlexiBertError(f"measured table {path}: no measured value for task {name!r}")
    hashes = data.get("hashes")
    if hashes is not None and (not isinstance(hashes, list) or len(hashes) != len(cards)):
        raise FlexiBertError(f"measured table {path}: 'hashes' must list one hash per model")
    emb = data.get("embeddings")
    if emb is not None:
        try:
            emb = np.asarray(emb, dtype=float)
        except (TypeError, ValueError):
            raise FlexiBertError(f"measured table {path}: 'embeddings' is not a numeric matrix") from None
        if emb.ndim != 2 or len(emb) != len(cards) or not np.isfinite(emb).all():
            raise FlexiBertError(f"measured table {path}: 'embeddings' must be finite, one row per model")
    neighbors = None
    if hashes is not None and isinstance(data.get("neighbors"), list):
        where = {h: i for i, h in enumerate(hashes)}
        try:
            neighbors = np.array([[where[h] for h in row] for row in data["neighbors"]], dtype=int)
        except (KeyError, TypeError, ValueError):
            raise FlexiBertError(f"measured table {path}: 'neighbors' must list known hashes, equally many per model") from None
        if len(neighbors) != len(cards):
            raise FlexiBertError(f"measured table {path}: 'neighbors' must have one row per model")
    return MeasuredTable(str(path), name, cards, values, hashes, emb, neighbors)


# -- oracles ---------------------------------------------------------------------------------------
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


class TrainOracle:
    """Fine-tune the card (from the source checkpoint when there is one) with ``train_trial``.

    Every trial of a search uses the same tokenizer (the given one, else the one trained on
    the task's text and cached), so any trained model can pass its weights to another.
    """

    def __init__(self, task: str, profile: str = "quick", data: str | None = None, tokenizer: str | None = None,
                 seed: int = 42, max_train_samples: int | None = None, cache_dir: str | None = None) -> None:
        self.task, self.profile, self.data, self.tokenizer = task, profile, data, tokenizer
        self.seed, self.max_train_samples, self.cache_dir = seed, max_train_samples, cache_dir

    def __call__(self, request: TrialRequest) -> TrialOutcome:
        from flexibert.train.trial import get_profile, train_trial

        profile = get_profile(self.profile, max_train_samples=self.max_train_samples)
        r = train_trial(request.card, self.task, request.source_checkpoint, profile, request.workdir,
                        data=self.data, tokenizer=self.tokenizer, seed=self.seed, num_threads=request.num_threads,
                        cache_dir=self.cache_dir)
        return TrialOutcome(value=float(r.score), metrics=dict(r.metrics), checkpoint=r.checkpoint,
                            overlap=float(r.overlap), wall_s=float(r.wall_s))
