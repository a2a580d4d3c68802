"""Measured tables: cards with a measured value per task, in the 2021 study's JSON format.

The replay oracle answers from one, the benchmarks score the learner against one, and a
report of a replay search takes its cards and embeddings from one when it has them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from flexibert._common import FlexiBertError, read_json
from flexibert.space.design_space import ModelCard


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
