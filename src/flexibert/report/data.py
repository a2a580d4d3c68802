"""The report's input: a plain in-memory snapshot of a search, validated once at the boundary.

Keeping the report independent of storage lets it be built (and tested) from any
source: a finished run, a half-finished one, or the 2021 study's library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from flexibert._common import FlexiBertError
from flexibert.model.cost import param_count
from flexibert.space.design_space import ModelCard

QUALITY_KEYS: tuple[str, ...] = ("n_trained", "spearman", "kendall", "mae")


def _vector(name: str, value: Any, n: int) -> np.ndarray:
    arr = np.array(value, dtype=float)
    if arr.shape != (n,):
        raise FlexiBertError(f"report data: '{name}' must have shape ({n},), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise FlexiBertError(f"report data: '{name}' has non-finite values")
    arr.setflags(write=False)
    return arr


def _index(name: str, i: Any, n: int) -> int:
    if not isinstance(i, (int, np.integer)) or isinstance(i, bool) or not 0 <= i < n:
        raise FlexiBertError(f"report data: '{name}' index {i!r} is not a model index in [0, {n})")
    return int(i)


def _number(name: str, x: Any, allow_nan: bool = False) -> float:
    try:
        value = float(x)
    except (TypeError, ValueError):
        raise FlexiBertError(f"report data: '{name}' value {x!r} is not a number") from None
    if math.isinf(value) or (math.isnan(value) and not allow_nan):
        raise FlexiBertError(f"report data: '{name}' value {x!r} is not finite")
    return value


@dataclass(frozen=True, eq=False)
class ReportData:
    """Everything a report shows; ``params`` defaults to :func:`flexibert.model.cost.param_count` of each card."""

    cards: Sequence[ModelCard]
    embeddings: np.ndarray  # (n, m) Transformer2vec coordinates
    measured: Mapping[int, float]  # model index -> measured dev metric
    predicted_mean: np.ndarray  # (n,) surrogate mean
    predicted_std: np.ndarray  # (n,) surrogate standard deviation
    seeds: Sequence[int] = ()
    sweep: Mapping[int, float] = field(default_factory=dict)  # m -> Frobenius error
    dissimilarity: np.ndarray | None = None  # (n, n), None for huge spaces
    quality: Sequence[Mapping[str, float]] = ()  # held-out surrogate quality over the search
    task: str = "SST-2"
    metric_name: str = "accuracy"
    title: str = "FlexiBERT design-space report"
    params: np.ndarray | None = None  # (n,) parameter counts
    latency_ms: np.ndarray | None = None  # (n,) latency on the run's machine (measured or predicted), if known

    def __post_init__(self) -> None:
        cards = tuple(self.cards)
        if not cards:
            raise FlexiBertError("report data: 'cards' is empty")
        for i, card in enumerate(cards):
            if not isinstance(card, ModelCard):
                raise FlexiBertError(f"report data: cards[{i}] is a {type(card).__name__}, not a ModelCard")
        n = len(cards)
        emb = np.array(self.embeddings, dtype=float)
        if emb.ndim != 2 or emb.shape[0] != n or emb.shape[1] < 1:
            raise FlexiBertError(f"report data: 'embeddings' must have shape ({n}, m), got {emb.shape}")
        if not np.isfinite(emb).all():
            raise FlexiBertError("report data: 'embeddings' has non-finite values")
        emb.setflags(write=False)
        mean = _vector("predicted_mean", self.predicted_mean, n)
        std = _vector("predicted_std", self.predicted_std, n)
        if (std < 0).any():
            raise FlexiBertError("report data: 'predicted_std' has negative values")
        params = self.params if self.params is not None else [param_count(c) for c in cards]
        params = _vector("params", params, n)
        measured = {_index("measured", i, n): _number("measured", v) for i, v in dict(self.measured).items()}
        seeds = tuple(_index("seeds", i, n) for i in self.seeds)
        if len(set(seeds)) != len(seeds):
            raise FlexiBertError(f"report data: 'seeds' lists a model twice: {list(seeds)}")
        sweep = {}
        for m, err in dict(self.sweep).items():
            if not isinstance(m, (int, np.integer)) or isinstance(m, bool) or m < 1:
                raise FlexiBertError(f"report data: 'sweep' key {m!r} is not a positive embedding dimension")
            sweep[int(m)] = _number(f"sweep[{m}]", err)
        dis = None
        if self.dissimilarity is not None:
            dis = np.array(self.dissimilarity, dtype=float)
            if dis.shape != (n, n):
                raise FlexiBertError(f"report data: 'dissimilarity' must have shape ({n}, {n}), got {dis.shape}")
            if not np.isfinite(dis).all():
                raise FlexiBertError("report data: 'dissimilarity' has non-finite values")
            dis.setflags(write=False)
        quality = []
        for k, row in enumerate(self.quality):
            missing = [key for key in QUALITY_KEYS if not isinstance(row, Mapping) or key not in row]
            if missing:
                raise FlexiBertError(f"report data: quality[{k}] lacks key(s) {missing}")
            quality.append({key: _number(f"quality[{k}].{key}", row[key], allow_nan=True) for key in QUALITY_KEYS})
        quality.sort(key=lambda r: r["n_trained"])
        latency = None if self.latency_ms is None else _vector("latency_ms", self.latency_ms, n)
        fields = dict(cards=cards, embeddings=emb, predicted_mean=mean, predicted_std=std, params=params,
                      latency_ms=latency)
        fields.update(measured=measured, seeds=seeds, sweep=dict(sorted(sweep.items())), dissimilarity=dis)
        fields.update(quality=quality)
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    @property
    def n(self) -> int:
        return len(self.cards)

    @property
    def measured_indices(self) -> np.ndarray:
        return np.array(sorted(self.measured), dtype=int)

    @property
    def measured_values(self) -> np.ndarray:
        return np.array([self.measured[i] for i in sorted(self.measured)], dtype=float)
