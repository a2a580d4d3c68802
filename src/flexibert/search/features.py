"""The surrogate's inputs: each card's embedding plus nine scaled card statistics.

Summary statistics were chosen over per-layer lists, parameter or FLOP counts and the
exact WL features by an ablation on the study's 620 measured SST-2 accuracies (README,
"Surrogate inputs"): they lift held-out Spearman over the embedding alone and keep its
scores on folds grouped by structure, where per-layer lists generalise worst.

Every statistic lies in [0, 1] relative to the *space's* range, so nothing is tuned
to one table: widths and head counts enter as log2, scaled by the space's smallest
and largest value; depth by the space's depth range; similarity as the fraction of
WMA layers. The block is divided by sqrt(9) so its distances, like the embedding's
(an MDS of the dissimilarity 1 - K, which lies in [0, 1]), are at most 1.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from flexibert._common import FlexiBertError
from flexibert.space.design_space import DesignSpace, ModelCard

#: The card statistics appended to the embedding, in column order.
CARD_STATS: tuple[str, ...] = (
    "depth", "hidden_mean", "hidden_min", "hidden_max", "heads_mean",
    "ff_mean", "ff_min", "ff_max", "wma_fraction",
)


def _log_range(values: Sequence[int], what: str) -> tuple[float, float]:
    logs = np.log2(np.asarray(values, dtype=float))
    if not len(logs):
        raise FlexiBertError(f"surrogate inputs: no {what} values to scale by")
    return float(logs.min()), float(logs.max())


def _scaled(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Map [lo, hi] onto [0, 1]; a dimension with one value carries no information: 0."""
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def surrogate_inputs(cards: Sequence[ModelCard], embeddings: np.ndarray,
                     space: DesignSpace | None = None) -> np.ndarray:
    """The GP surrogate's input matrix: ``embeddings`` (one row per card) then :data:`CARD_STATS`.

    Statistics are scaled by ``space``'s value ranges; without a space, by the ranges the
    cards span (pass all the cards a search ranges over, not a subset, for the same scaling).
    """
    emb = np.asarray(embeddings, dtype=float)
    if emb.ndim != 2 or len(emb) != len(cards):
        raise FlexiBertError(f"surrogate inputs: expected one embedding row per card ({len(cards)}), "
                             f"got shape {emb.shape}")
    if space is None:
        depths = [c.l for c in cards]
        heads = [a for c in cards for a in c.a]
        hidden = [h for c in cards for h in c.h]
        ff = [f for c in cards for f in c.f]
    else:
        depths, heads, hidden, ff = space.layers, space.heads, space.hidden, space.feed_forward
    ranges = {"depth": (float(min(depths, default=1)), float(max(depths, default=1))),
              "heads": _log_range(heads, "head"), "hidden": _log_range(hidden, "hidden"),
              "ff": _log_range(ff, "feed-forward")}
    stats = np.empty((len(cards), len(CARD_STATS)))
    for i, c in enumerate(cards):
        h = _scaled(np.log2(c.h), *ranges["hidden"])
        a = _scaled(np.log2(c.a), *ranges["heads"])
        f = _scaled(np.log2(c.f), *ranges["ff"])
        stats[i] = (_scaled(np.float64(c.l), *ranges["depth"]), h.mean(), h.min(), h.max(), a.mean(),
                    f.mean(), f.min(), f.max(), c.s.count("wma") / c.l)
    if len(cards) and not ((stats >= -1e-12) & (stats <= 1 + 1e-12)).all():
        row = int(np.flatnonzero(((stats < -1e-12) | (stats > 1 + 1e-12)).any(axis=1))[0])
        raise FlexiBertError(f"surrogate inputs: card {cards[row]} lies outside the space's value ranges")
    return np.hstack([emb, stats / np.sqrt(len(CARD_STATS))])
