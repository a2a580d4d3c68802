"""The numbers a report shows: Pareto fronts, rankings and the effect of each design choice."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from flexibert.report.data import ReportData
from flexibert.space.design_space import PER_LAYER, ModelCard

DIMENSION_NAMES = {"a": "heads", "h": "hidden", "f": "feed-forward", "s": "similarity"}
JUDGED = 20  # fewer trained models than this: the held-out rank correlation says little either way


def pareto_front(params: Sequence[float], values: Sequence[float]) -> np.ndarray:
    """Positions of the points no other point beats on both axes (fewer params, higher value), by params.

    A point is dominated when another has no more parameters and no lower value and
    is strictly better on one of the two; exact duplicates do not dominate each other.
    """
    params = np.asarray(params, dtype=float)
    values = np.asarray(values, dtype=float)
    if params.shape != values.shape or params.ndim != 1:
        raise ValueError(f"params and values must be 1-d of one length, got {params.shape} and {values.shape}")
    order = np.lexsort((np.arange(len(params)), -values, params))
    front: list[int] = []
    best = -np.inf
    start = 0
    while start < len(order):
        stop = start
        while stop < len(order) and params[order[stop]] == params[order[start]]:
            stop += 1
        top = values[order[start]]  # the group's highest value: the order sorts value descending
        if top > best:
            front.extend(int(k) for k in order[start:stop] if values[k] == top)
            best = top
        start = stop
    return np.array(front, dtype=int)


def top_k(
    indices: Sequence[int], values: Sequence[float], params: Sequence[float], k: int, largest: bool = True
) -> list[int]:
    """The ``k`` indices with the highest (or lowest) values; of equal values, the smaller model ranks higher."""
    indices = np.asarray(indices, dtype=int)
    values = np.asarray(values, dtype=float)
    params = np.asarray(params, dtype=float)
    order = np.lexsort((indices, params, -values) if largest else (indices, -params, values))
    return [int(i) for i in indices[order[:k]]]


def allowed_measured(data: ReportData) -> np.ndarray:
    """The measured models the budget allows."""
    idx = data.measured_indices
    return idx[data.allowed[idx]]


def best_measured(data: ReportData) -> int | None:
    """The best measured model within budget; None when no measured model fits."""
    idx = allowed_measured(data)
    if not len(idx):
        return None
    return top_k(idx, [data.measured[i] for i in idx], data.params[idx], 1)[0]


def best_predicted(data: ReportData) -> int | None:
    """The model within budget the surrogate ranks first; None when the budget allows none."""
    idx = np.flatnonzero(data.allowed)
    return top_k(idx, data.predicted_mean[idx], data.params[idx], 1)[0] if len(idx) else None


def index_of(data: ReportData, card: ModelCard) -> int | None:
    """The position of ``card`` in the space, if it is there (a reference need not be)."""
    return next((i for i, c in enumerate(data.cards) if c == card), None)


def lead(data: ReportData) -> tuple[ModelCard, str] | None:
    """The model a report leads with and what it is: the confirmed winner, else the best measured within budget."""
    if data.answer is not None:
        return data.answer.winner["card"], "confirmed winner"
    best = best_measured(data)
    if best is None:
        return None
    return data.cards[best], "best measured within budget, unconfirmed" if data.budget else "best measured, unconfirmed"


def spearman_interval(rho: float, n: int) -> tuple[float, float] | None:
    """95% interval of a Spearman correlation from ``n`` pairs, by Fisher z with se = 1.06 / sqrt(n - 3)."""
    if n <= 3 or not np.isfinite(rho):
        return None
    z = np.arctanh(np.clip(rho, -0.999999, 0.999999))
    half = 1.959964 * 1.06 / np.sqrt(n - 3)
    return float(np.tanh(z - half)), float(np.tanh(z + half))


@dataclass(frozen=True)
class ChoiceEffect:
    """Mean predicted score of the models that make one choice at each layer position."""

    dimension: str  # a, h, f or s
    value: int | str
    by_layer: tuple[tuple[float, int] | None, ...]  # (mean, models) per layer position; None: nobody


def choice_effects(cards: Sequence[ModelCard], predicted: np.ndarray) -> list[ChoiceEffect]:
    """For each layer position, dimension and value: mean predicted score of the models with it there."""
    depth = max(c.l for c in cards)
    sums: dict[tuple[str, object, int], list[float]] = {}
    by_l: dict[int, list[int]] = {}
    for i, card in enumerate(cards):
        by_l.setdefault(card.l, []).append(i)
    for l, rows in by_l.items():  # noqa: E741 - the study's name
        scores = predicted[rows]
        for dim in PER_LAYER:
            grid = np.array([getattr(cards[i], dim) for i in rows])  # (models, l)
            for j in range(l):
                for value in np.unique(grid[:, j]):
                    hit = grid[:, j] == value
                    acc = sums.setdefault((dim, value.item(), j), [0.0, 0])
                    acc[0] += float(scores[hit].sum())
                    acc[1] += int(hit.sum())
    effects = []
    for dim in PER_LAYER:
        for value in sorted({v for d, v, _ in sums if d == dim}):
            cells = tuple(
                (sums[dim, value, j][0] / sums[dim, value, j][1], sums[dim, value, j][1])
                if (dim, value, j) in sums
                else None
                for j in range(depth)
            )
            effects.append(ChoiceEffect(dim, value, cells))
    return effects


@dataclass(frozen=True)
class DepthSummary:
    """Predicted and measured scores of the models with one number of layers."""

    layers: int
    models: int
    predicted_mean: float
    predicted_max: float
    measured: int
    measured_mean: float | None
    measured_max: float | None


def depth_summary(cards: Sequence[ModelCard], predicted: np.ndarray, measured: dict[int, float]) -> list[DepthSummary]:
    depths = np.array([c.l for c in cards])
    rows = []
    for l in sorted(set(depths.tolist())):  # noqa: E741
        scores = predicted[depths == l]
        seen = [v for i, v in measured.items() if depths[i] == l]
        rows.append(
            DepthSummary(
                layers=l,
                models=len(scores),
                predicted_mean=float(scores.mean()),
                predicted_max=float(scores.max()),
                measured=len(seen),
                measured_mean=float(np.mean(seen)) if seen else None,
                measured_max=float(np.max(seen)) if seen else None,
            )
        )
    return rows
