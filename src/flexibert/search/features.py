"""The surrogate's inputs: each card's embedding plus nine scaled card statistics.

Chosen by measurement on the study's 620 measured SST-2 accuracies (``GPSurrogate``,
Matern 1/2 + white noise). "30%": Spearman on the unseen 70% after fitting a random
30%, mean and 95% CI over 20 seeds. Grouped columns: leave one group out (fit on the
other groups, Spearman inside the held-out group, averaged over groups), grouping by
depth, first and last layer width (h0, hL), first and last feed-forward width (f0, fL),
first layer's heads (a0) and similarity (s0); "mean" averages the seven.

=================================  ============  =====  =====  =====  =====  =====  =====  =====  =====
inputs                             30%           depth  h0     hL     f0     fL     a0     s0     mean
=================================  ============  =====  =====  =====  =====  =====  =====  =====  =====
embedding alone (before)           0.636 ± .012  0.592  0.143  0.364  0.489  0.675  0.137  0.440  0.406
embedding + 9 statistics (chosen)  0.686 ± .011  0.592  0.093  0.437  0.587  0.676  0.189  0.448  0.432
... + log params, log FLOPs        0.686 ± .011  0.600  0.101  0.440  0.589  0.677  0.191  0.448  0.435
... statistics weighted 0.5        0.668 ± .012  0.604  0.143  0.408  0.558  0.687  0.163  0.440  0.429
... statistics weighted 2          0.692 ± .010  0.574  0.042  0.473  0.588  0.641  0.229  0.456  0.429
embedding + depth, log params,     0.658 ± .011  0.597  0.164  0.439  0.502  0.652  0.095  0.409  0.408
  log FLOPs
embedding + per-layer h, a, f, s   0.688 ± .010  0.573 -0.036  0.355  0.584  0.702  0.198  0.444  0.403
  (padded by repeating the last)
... padded with zeros              0.689 ± .010  0.609 -0.100  0.378  0.579   --    0.095  0.432   --
9 statistics + log params/FLOPs    0.673 ± .010  0.522  0.053  0.491  0.537   --    0.224  0.420   --
per-layer h, a, f, s alone         0.684 ± .008  0.493 -0.134  0.372  0.588   --    0.291  0.365   --
WL features (Matern on the exact   0.619 ± .011  0.552  0.069  0.332  0.476   --    0.046  0.242   --
  WL feature-space distance)
=================================  ============  =====  =====  =====  =====  =====  =====  =====  =====

Any card features lift the random-split score by 0.05 (the embedding, an 8-d MDS of
graph similarity, blurs widths that matter for accuracy), but per-layer lists
generalise worst across structure (leave-one-first-width-out goes negative: a padded
position means different things at different depths), while summary statistics keep
the embedding's grouped scores and improve most of them. Parameter and FLOP counts
add nothing over the statistics (and would pull torch in through ``flexibert.model``);
the exact WL kernel is no better than its 8-d embedding. The statistics' block is
weighted 1 (0.5 and 2 trade the random-split and grouped scores against each other).

On this table the search itself barely notices (``bench/search.py``, 20 seeds, ucb regret
in accuracy points after 25 / 50 / 100 queries): 1.02 / 0.37 / 0.01 with the statistics,
0.93 / 0.33 / 0.01 with the embedding alone, 95% CIs about +-0.34 / +-0.24 / +-0.01; the
overlap constraint's local search dominates there. The choice rests on the surrogate's
robustness, which is what a new task's table needs.

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
