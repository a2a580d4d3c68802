"""Time ``ActiveLearner.ask`` on the full 332,352-model space (flexibert-small.yaml under the "full" rule).

The space library (cards, landmark-MDS embedding, k nearest neighbours) comes from
``flexibert.space.library.build_space``, cached under ``runs/spaces`` (six minutes on an
idle machine the first time). The learner tells the four seeds, then its own proposals,
valued by a deterministic function of the card, until ``--trained`` results are in. Each
of ``--asks`` steps then times two asks: one from the schedule's start threshold, as if it
had never relaxed, so that every relaxation level is walked (the slow case, and the
headline median), and the run's own at its current threshold; an untimed tell and refit
follow. This runs once per acquisition in ``ACQUISITIONS``; the headline is the worse
median. For a ratio, the scalar ask this replaced (one card-level ``overlap`` call per
candidate and neighbour) runs in the same process on a learner whose candidates are a
random ``--subset`` of the space (the seeds included; neighbours are still the full
space's), beside the vectorised ask on the same state; the two must propose the same.
``--scalar-full`` also times the scalar ask once on the full space: the first ask after
the seeds, which walks every candidate at every level.

    python bench/ask_full.py [--asks 12 --trained 20 --subset 20000 --scalar-full]
"""

from __future__ import annotations

import argparse
import hashlib
import math
import sys
import time
from pathlib import Path
from typing import Callable, Collection, Sequence

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, SMALL_SPACE, summary  # noqa: E402

from flexibert.model.cost import param_count  # noqa: E402
from flexibert.model.overlap import overlap  # noqa: E402
from flexibert.search.acquisition import order  # noqa: E402
from flexibert.search.learner import ActiveLearner, Proposal  # noqa: E402
from flexibert.space.design_space import DesignSpace, ModelCard  # noqa: E402
from flexibert.space.library import BuildParams, build_space  # noqa: E402
from flexibert.space.seeds import SEED_CARDS  # noqa: E402

#: ``ucb`` (the default) usually accepts a candidate near a trained model early in its ranking;
#: ``uncertainty`` ranks far-away models first, so its asks walk deepest.
ACQUISITIONS = ("ucb", "uncertainty")


def value(card: ModelCard) -> float:
    """A stand-in result: smooth in size, plus a fixed per-card jitter (only the timing matters)."""
    jitter = int(hashlib.sha256(card.key.encode()).hexdigest()[:8], 16) / 16**8
    return 0.75 + 0.1 * math.tanh(param_count(card) / 6e6) + 0.02 * jitter


class ScalarAsk:
    """The ask before the overlap was vectorised: a Python walk, one memoised ``overlap`` per pair."""

    def __init__(self, learner: ActiveLearner) -> None:
        self.al, self.memo = learner, {}

    def _overlap(self, query: int, source: int) -> float:
        if (query, source) not in self.memo:
            self.memo[query, source] = overlap(self.al.cards[query], self.al.cards[source], self.al.dims)
        return self.memo[query, source]

    def _best_source(self, index: int, threshold: float) -> tuple[int | None, float]:
        al = self.al
        if threshold < al.schedule.all_sources_below - 1e-9:
            pool = list(al.trained)
        else:
            pool = [j for j in al.neighbors[index].tolist() if j in al.trained]
        best, best_ov = None, -1.0
        for j in pool:
            ov = self._overlap(index, j)
            if ov > best_ov:
                best, best_ov = j, ov
        return best, best_ov

    def __call__(self, busy: Collection[int] = ()) -> Proposal | None:
        """As the old ``ask`` (after the seeds), except that it leaves the learner's threshold alone."""
        al = self.al
        taken = set(al.trained) | al.failed | set(busy)
        free = np.array([c not in taken for c in al.candidates.tolist()], dtype=bool)
        positions = np.flatnonzero(free)
        rng = np.random.default_rng([al.seed, len(al.trained), len(al.failed), len(busy)])
        ranked = positions[order(al.acquisition, al._mean[positions], al._std[positions],
                                 al.snapshot.best_value, rng, al.beta)]
        threshold = al.threshold
        while threshold is not None:
            for pos in ranked.tolist():
                index = int(al.candidates[pos])
                source, ov = self._best_source(index, threshold)
                if source is not None and ov >= threshold - 1e-9:
                    return Proposal(index, al.cards[index], source, ov, threshold)
            threshold = al.schedule.relax(threshold)
        return None


def warm_up(al: ActiveLearner, n_trained: int) -> None:
    """Tell the seeds, then the learner's own proposals, until ``n_trained`` results are in."""
    while len(al.trained) < n_trained:
        p = al.ask()
        al.tell(p.index, value(p.card))
        if len(al.trained) >= len(al.seeds):
            al.refit()


def step(al: ActiveLearner, p: Proposal) -> None:
    al.tell(p.index, value(p.card))
    al.refit()


def timed(ask: Callable[[], Proposal | None]) -> tuple[float, Proposal | None]:
    t = time.perf_counter()
    p = ask()
    return time.perf_counter() - t, p


def from_start(al: ActiveLearner, ask: Callable[[], Proposal | None]) -> tuple[float, Proposal | None]:
    """Time ``ask`` as if the threshold had never relaxed (every level walked), then put it back."""
    kept, al.threshold = al.threshold, al.schedule.start
    try:
        return timed(ask)
    finally:
        al.threshold = kept


def check_same(vector: Proposal | None, scalar: Proposal | None) -> None:
    if vector != scalar:
        raise SystemExit(f"the vectorised ask proposed {vector}, the scalar ask {scalar}")


def time_acquisition(acquisition: str, cards, X, nb, seeds: list[int], args) -> dict:
    """First ask after the seeds (the deepest walk), then ``args.asks`` steps once ``args.trained`` are told."""
    t = time.perf_counter()
    al = ActiveLearner(cards, X, seeds=seeds, neighbors=nb, cv_folds=0, acquisition=acquisition)
    init_s = time.perf_counter() - t
    warm_up(al, len(seeds))
    first_s, p = from_start(al, al.ask)
    line = f"[{acquisition}] learner built in {init_s:.1f} s; first ask after the seeds {first_s:.3f} s"
    out = {"init_s": init_s, "first_s": first_s}
    if args.scalar_full:
        out["first_scalar_s"], q = from_start(al, ScalarAsk(al))
        check_same(p, q)
        line += f" (scalar {out['first_scalar_s']:.1f} s, same proposal)"
    print(f"{line}; relaxed to {p.threshold:.1f}", flush=True)
    warm_up(al, args.trained)
    fresh, steady = [], []
    for i in range(args.asks):
        dt, q = from_start(al, al.ask)
        fresh.append(dt)
        dt, p = timed(al.ask)
        steady.append(dt)
        print(f"  ask {i + 1:2d} ({len(al.trained)} told): from start {fresh[-1]:.3f} s (passes {q.threshold:.1f}), "
              f"at the run's {p.threshold:.1f} {steady[-1]:.3f} s  overlap {p.overlap:.3f}  {p.card}", flush=True)
        step(al, p)
    out.update(median_s=float(np.median(fresh)), max_s=max(fresh), steady_median_s=float(np.median(steady)))
    print(f"[{acquisition}] median ask {out['median_s']:.3f} s from the start threshold (max {out['max_s']:.3f} s), "
          f"{out['steady_median_s']:.3f} s at the run's threshold", flush=True)
    return out


def main(argv: Sequence[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", type=Path, default=SMALL_SPACE)
    ap.add_argument("--library", type=Path, default=ROOT / "runs" / "spaces", help="base directory of space libraries")
    ap.add_argument("--trained", type=int, default=20, help="results told before timing")
    ap.add_argument("--asks", type=int, default=12, help="timed asks per acquisition (at least 10)")
    ap.add_argument("--subset", type=int, default=20_000, help="candidates of the scalar-vs-vector comparison")
    ap.add_argument("--subset-asks", type=int, default=5)
    ap.add_argument("--scalar-full", action="store_true",
                    help="also time the scalar ask on the full space, once per acquisition")
    args = ap.parse_args(argv)
    if args.asks < 10:
        ap.error("--asks must be at least 10: the figure is a median")

    space = DesignSpace.from_yaml(args.space, rule="full")
    t = time.perf_counter()
    lib = build_space(space, args.library, BuildParams())
    load_s = time.perf_counter() - t
    cards, X, nb = lib.cards, lib.embeddings, lib.neighbours
    print(f"{space.name} (rule full): {len(cards)} models, embedding {X.shape[1]}-d "
          f"({lib.manifest['params']['n_landmarks']} landmarks), k = {nb.shape[1]}; library {lib.root} "
          f"ready in {load_s:.1f} s", flush=True)
    where = {c.key: i for i, c in enumerate(cards)}
    seeds = [where[c.key] for c in SEED_CARDS.values()]
    runs = {acq: time_acquisition(acq, cards, X, nb, seeds, args) for acq in ACQUISITIONS}
    worst = max(runs, key=lambda a: runs[a]["median_s"])
    figures = {"ask_full_models": len(cards), "ask_full_asks": args.asks, "ask_full_trained": args.trained,
               "ask_full_median_s": round(runs[worst]["median_s"], 4), "ask_full_worst_acquisition": worst}
    for acq, r in runs.items():
        figures.update({f"{acq}_{k}": round(v, 4) for k, v in r.items()})

    rng = np.random.default_rng(0)
    subset = np.union1d(rng.choice(len(cards), args.subset, replace=False), seeds)
    sub = ActiveLearner(cards, X, seeds=seeds, candidates=subset, neighbors=nb, cv_folds=0, acquisition="uncertainty")
    scalar, old, new = ScalarAsk(sub), [], []
    warm_up(sub, len(seeds))
    first_old, expected = from_start(sub, scalar)
    first_new, p = from_start(sub, sub.ask)
    check_same(p, expected)
    print(f"  subset, first ask after the seeds: scalar {first_old:.3f} s, vectorised {first_new:.4f} s", flush=True)
    warm_up(sub, args.trained)
    for i in range(args.subset_asks):
        dt_old, expected = from_start(sub, scalar)
        dt_new, p = from_start(sub, sub.ask)
        check_same(p, expected)
        old.append(dt_old)
        new.append(dt_new)
        expected = scalar()
        p = sub.ask()
        check_same(p, expected)
        print(f"  subset ask {i + 1}: from start, scalar {old[-1]:.3f} s, vectorised {new[-1]:.4f} s", flush=True)
        step(sub, p)
    ratio = float(np.median(old) / np.median(new))
    print(f"subset: {len(subset)} random candidates of the full space (rng seed 0, the 4 seeds included, "
          f"full-space neighbours), uncertainty acquisition, {args.trained}+ told, asks from the start threshold: "
          f"median scalar {np.median(old):.3f} s, vectorised {np.median(new):.4f} s, {ratio:.0f}x; "
          "proposals identical", flush=True)
    figures.update({
        "subset_candidates": len(subset),
        "subset_scalar_median_s": round(float(np.median(old)), 4),
        "subset_vector_median_s": round(float(np.median(new)), 4),
        "subset_speedup": round(ratio, 1),
        "subset_first_scalar_s": round(first_old, 4),
        "subset_first_vector_s": round(first_new, 4),
    })
    summary(figures)
    return figures


if __name__ == "__main__":
    main()
