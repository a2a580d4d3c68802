"""Active learning as ask/tell: which model to train next, from what source, and when to stop.

The study's Algorithm 1 with its quirks fixed. The learner starts from the seed
models; after each result it refits the surrogate and scores k-fold held-out
quality. ``ask`` walks the free candidates in acquisition order and accepts the
first one that some *trained* model among its k nearest neighbours (embedding
space) can pass at least ``threshold`` of its encoder-layer parameters to (the
overlap of ``flexibert.model.overlap``); that best-overlap neighbour is the weight
source. When no candidate qualifies the threshold relaxes (see :class:`RelaxationSchedule`).
The search stops when ``1.96 * max sigma < ci``.

The learner knows nothing of storage or workers: its whole state is the told
results plus ``threshold`` and the surrogate's hyperparameters, which
:meth:`ActiveLearner.restore` takes back after a crash.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Collection, Sequence

import numpy as np

from flexibert._common import FlexiBertError
from flexibert.model.cost import ArchDims
from flexibert.model.overlap import CardLayers
from flexibert.search.acquisition import check_acquisition, order
from flexibert.search.surrogate import GPSurrogate, HeldOut, cross_validate
from flexibert.space.design_space import ModelCard

#: ``ask`` scores ranked candidates in chunks that start at FIRST_CHUNK rows (the best usually
#: qualifies early) and grow fourfold up to PAIRS_PER_CHUNK query-source pairs (bounds memory).
FIRST_CHUNK = 64
PAIRS_PER_CHUNK = 1 << 18


@dataclass(frozen=True)
class RelaxationSchedule:
    """Overlap threshold: starts at ``start``, drops by ``step`` each time no candidate qualifies.

    It never rises again, as in the study. Below ``all_sources_below`` every trained
    model is a possible source, not only the k nearest; at ``floor`` (0 by default)
    every free candidate qualifies, so the search can never stall.
    """

    start: float = 0.9
    step: float = 0.1
    floor: float = 0.0
    all_sources_below: float = 0.5

    def __post_init__(self) -> None:
        if not (0.0 <= self.floor <= self.start <= 1.0) or self.step <= 0:
            raise FlexiBertError(f"relaxation schedule needs 0 <= floor <= start <= 1 and step > 0, got {self}")

    def relax(self, threshold: float) -> float | None:
        """The next lower threshold, or None at the floor."""
        if threshold <= self.floor + 1e-9:
            return None
        return max(round(threshold - self.step, 9), self.floor)

    def levels(self) -> list[float]:
        out, t = [self.start], self.relax(self.start)
        while t is not None:
            out.append(t)
            t = self.relax(t)
        return out


@dataclass(frozen=True)
class Proposal:
    """What to train next: a card, where its weights come from, and why it was accepted."""

    index: int
    card: ModelCard
    source: int | None  # index of the trained model whose weights it inherits; None = from scratch
    overlap: float
    threshold: float | None  # the threshold it passed; None for a seed


@dataclass(frozen=True)
class Snapshot:
    """The surrogate after one refit: its held-out quality, uncertainty and best result."""

    n_trained: int
    best_index: int
    best_value: float
    max_sigma: float
    held_out: HeldOut | None
    theta: list[float]
    kernel: str
    optimized: bool  # hyperparameters re-maximised at this refit
    threshold: float
    n_optimized: int  # training-set size at the last hyperparameter optimisation

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "held_out"}
        d["held_out"] = self.held_out.to_dict() if self.held_out else None
        return d


@dataclass
class ActiveLearner:
    """Ask/tell active learning over ``cards`` embedded as rows of ``X``.

    ``candidates`` limits what may be proposed (a replay can only answer measured models);
    ``neighbors[i]`` lists the k nearest models of card ``i`` over all cards (computed in
    embedding space when omitted). Hyperparameters are re-maximised when the training set
    has grown by ``reoptimize_growth`` since the last time, else only conditioned on: this
    keeps a refit per result cheap and makes it a function of the told results alone.
    ``cv_folds=0`` skips the held-out score (benchmarks that only count queries).
    Convergence is not declared before ``min_trained`` results: a handful of points cannot
    tell signal from noise, and a GP that explains them all as noise has a tiny sigma.
    ``dims`` are the run's non-card sizes; the overlap counts encoder layers only, so of them
    only the position scheme matters (a relative-position table belongs to each attention block).
    ``layer_map`` is the trials' own (``model.overlap``), so the overlap counts what they inherit.
    """

    cards: Sequence[ModelCard]
    X: np.ndarray
    seeds: Sequence[int] = ()
    candidates: Sequence[int] | None = None
    neighbors: np.ndarray | None = None
    k: int = 10
    acquisition: str = "ucb"
    beta: float = 2.0
    ci: float = 0.005
    schedule: RelaxationSchedule = field(default_factory=RelaxationSchedule)
    surrogate: GPSurrogate = field(default_factory=GPSurrogate)
    reoptimize_growth: float = 1.2
    cv_folds: int = 5
    min_trained: int = 10
    seed: int = 0
    dims: ArchDims = field(default_factory=ArchDims)
    layer_map: str = "bottom"  # which source layers a query inherits, as the trials transfer them

    def __post_init__(self) -> None:
        check_acquisition(self.acquisition)
        self.X = np.asarray(self.X, dtype=float)
        if self.X.ndim != 2 or len(self.X) != len(self.cards):
            raise FlexiBertError(f"embeddings: expected {len(self.cards)} rows (one per card), got shape {self.X.shape}")
        n = len(self.cards)
        cand = np.arange(n) if self.candidates is None else np.unique(np.asarray(self.candidates, dtype=int))
        if len(cand) and (cand.min() < 0 or cand.max() >= n):
            raise FlexiBertError(f"candidates: indices must lie in [0, {n})")
        self.candidates = cand
        self.seeds = [int(s) for s in self.seeds]
        if any(s not in set(cand.tolist()) for s in self.seeds):
            raise FlexiBertError("seed models must be among the candidates (a replay table must measure them)")
        if self.neighbors is None:
            from flexibert.space.embed import nearest_neighbours

            self.neighbors = nearest_neighbours(self.X, self.k)[0]
        self.neighbors = np.asarray(self.neighbors, dtype=int)
        if self.neighbors.ndim != 2 or len(self.neighbors) != n:
            raise FlexiBertError(f"neighbours: expected {n} rows of indices, got shape {self.neighbors.shape}")
        self.trained: dict[int, float] = {}  # index -> value, in the order told
        self.failed: set[int] = set()
        self.threshold = self.schedule.start
        self.theta: list[float] | None = None
        self.n_optimized = 0
        self.snapshot: Snapshot | None = None
        self._mean = self._std = np.zeros(0)
        self._layers = CardLayers(self.cards, self.dims)  # every overlap in ``ask`` is an array pass over it

    # -- tell ---------------------------------------------------------------------------------
    def tell(self, index: int, value: float) -> None:
        if not math.isfinite(value):
            raise FlexiBertError(f"result for model {index} is not a finite number: {value!r}")
        if index in self.trained:
            raise FlexiBertError(f"model {index} was already told")
        self.trained[int(index)] = float(value)

    def tell_failed(self, index: int) -> None:
        """A model that could not be trained is never proposed again."""
        self.failed.add(int(index))

    def restore(self, threshold: float, theta: Sequence[float] | None, n_optimized: int) -> None:
        """Take back the state a crashed run had reached beyond its results."""
        self.threshold = min(float(threshold), self.schedule.start)
        self.theta = None if theta is None else [float(t) for t in theta]
        self.n_optimized = int(n_optimized)

    # -- refit --------------------------------------------------------------------------------
    def refit(self) -> Snapshot | None:
        """Fit the surrogate to every result so far; None until two results exist."""
        idx = np.fromiter(self.trained, dtype=int)
        if len(idx) < 2:
            return None
        X, y = self.X[idx], np.fromiter(self.trained.values(), dtype=float)
        optimize = self.theta is None or len(idx) >= math.ceil(self.reoptimize_growth * self.n_optimized)
        model = self.surrogate.clone()
        model.theta = None if optimize else np.asarray(self.theta)
        model.fit(X, y)
        if optimize:
            self.theta, self.n_optimized = model.theta_, len(idx)
        held = None
        if self.cv_folds and len(idx) >= 3:
            held = cross_validate(model.frozen(), X, y, self.cv_folds, self.seed)
        self._mean, self._std = model.predict(self.X[self.candidates])
        untrained = self._free_mask(())
        best = int(idx[np.argmax(y)])
        self.snapshot = Snapshot(
            n_trained=len(idx), best_index=best, best_value=self.trained[best],
            max_sigma=float(self._std[untrained].max()) if untrained.any() else 0.0, held_out=held,
            theta=list(self.theta), kernel=model.kernel_, optimized=optimize, threshold=self.threshold,
            n_optimized=self.n_optimized)
        return self.snapshot

    def _free_mask(self, busy: Collection[int]) -> np.ndarray:
        taken = np.zeros(len(self.cards), dtype=bool)
        taken[np.fromiter((*self.trained, *self.failed, *busy), dtype=np.intp)] = True
        return ~taken[self.candidates]

    # -- stop -----------------------------------------------------------------------------------
    def stop_reason(self) -> str | None:
        """'converged' (1.96 max sigma < ci), 'exhausted' (nothing left to train) or None."""
        if not self._free_mask(()).any():
            return "exhausted"
        s = self.snapshot
        if s is not None and s.n_trained >= self.min_trained and 1.96 * s.max_sigma < self.ci:
            return "converged"
        return None

    # -- ask --------------------------------------------------------------------------------------
    def best_sources(self, queries: np.ndarray, everyone: bool) -> tuple[np.ndarray, np.ndarray]:
        """Per query card: the trained model that can pass it the most weights, and that overlap.

        Sources are its neighbours, or every trained model when ``everyone``; ties go to the
        nearer neighbour, or to the one told first. A query with no trained source gets -1, -1.0.
        """
        queries = np.asarray(queries, dtype=np.intp)
        told = np.fromiter(self.trained, dtype=np.intp, count=len(self.trained))
        if not len(told):
            return np.full(len(queries), -1), np.full(len(queries), -1.0)
        if everyone:
            pool = np.broadcast_to(told, (len(queries), len(told)))
            ov = self._layers.overlap(queries[:, None], told[None, :], self.layer_map)
        else:  # few neighbours are trained: compute only those pairs
            is_trained = np.zeros(len(self.cards), dtype=bool)
            is_trained[told] = True
            near = self.neighbors[queries]
            pool = np.where(is_trained[near], near, -1)
            ov = np.full(pool.shape, -1.0)
            ok = pool >= 0
            ov[ok] = self._layers.overlap(queries[np.nonzero(ok)[0]], pool[ok], self.layer_map)
        rows, col = np.arange(len(queries)), ov.argmax(axis=1)  # the first maximum wins ties
        best = ov[rows, col]
        return np.where(best >= 0, pool[rows, col], -1), best

    def ask(self, busy: Collection[int] = ()) -> Proposal | None:
        """The next model to train, or None when nothing may start now (wait for a result)."""
        busy = {int(b) for b in busy}
        for s in self.seeds:
            if s not in self.trained and s not in self.failed and s not in busy:
                return Proposal(s, self.cards[s], None, 0.0, None)
        if self.snapshot is None and len(self.trained) != 1:  # told but not yet fitted: nothing is proposed blind,
            return None  # unless a single model (one pretrained seed) is all there is: no surrogate can be fit yet
        free = self._free_mask(busy)
        if not free.any():
            return None
        positions = np.flatnonzero(free)
        rng = np.random.default_rng([self.seed, len(self.trained), len(self.failed), len(busy)])
        if self.snapshot is None:  # one trained model (a single pretrained seed): no surrogate yet, so the
            ranked = self.candidates[positions[rng.permutation(len(positions))]]  # overlap rule alone decides
        else:
            ranked = self.candidates[positions[order(self.acquisition, self._mean[positions], self._std[positions],
                                                     self.snapshot.best_value, rng, self.beta)]]
        # Chunks of ranked candidates with their best sources, computed once per ask for all levels.
        # The neighbour chunks mostly cost a gather: overlaps are computed for trained pairs only.
        seen: dict[tuple[bool, int], tuple[np.ndarray, np.ndarray]] = {}
        threshold: float | None = self.threshold
        while threshold is not None:
            everyone = threshold < self.schedule.all_sources_below - 1e-9
            cap = max(1, PAIRS_PER_CHUNK // max(1, len(self.trained) if everyone else self.neighbors.shape[1]))
            lo, rows = 0, min(FIRST_CHUNK, cap)
            while lo < len(ranked):
                if (everyone, lo) not in seen:
                    seen[everyone, lo] = self.best_sources(ranked[lo:lo + rows], everyone)
                sources, overlaps = seen[everyone, lo]
                hit = np.flatnonzero(overlaps >= threshold - 1e-9)  # -1.0 (no source) never passes
                if len(hit):
                    k = hit[0]
                    index = int(ranked[lo + k])
                    self.threshold = threshold
                    return Proposal(index, self.cards[index], int(sources[k]), float(overlaps[k]), threshold)
                lo, rows = lo + rows, min(4 * rows, cap)
            threshold = self.schedule.relax(threshold)
        return None
