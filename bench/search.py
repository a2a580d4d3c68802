"""Replay benchmark of the surrogate and the active learner on a measured table (default: the study's SST-2).

(1) Held-out Spearman of the GP surrogate against the number of trained models: fit on
a random fraction of the measured models, rank the rest. The 2021 surrogate (sklearn's
then-default GP: fixed 1.0 * RBF(1.0), no normalisation) runs on the same splits.
(2) Queries needed to train a best measured model, per acquisition, as a ratio of the
*mean* over seeds against the ``random`` acquisition run from the same start. Each
seed starts from 4 random measured models (the study's four seeds already include a
best model, so starting from them measures nothing) and runs the real scheduler,
overlap constraint and relaxation included, until it trains a model of the best
value. The overlap constraint alone is a strong local search, so the same ratios
against *uniform* random search (no constraint) are printed too.

    python bench/search.py [--table PATH --task NAME --seeds 20]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import STUDY_JSON, summary  # noqa: E402

from flexibert.search.learner import ActiveLearner  # noqa: E402
from flexibert.search.oracles import load_table  # noqa: E402
from flexibert.search.surrogate import GPSurrogate, rank_quality  # noqa: E402

FRACTIONS = (0.05, 0.1, 0.2, 0.3, 0.5)
ACQUISITIONS = ("random", "ucb", "ei", "uncertainty")
N_INIT = 4


def gp2021(X, y, X_test):
    from sklearn.gaussian_process import GaussianProcessRegressor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianProcessRegressor().fit(X, y).predict(X_test)  # kernel None: fixed 1.0 * RBF(1.0)


def held_out_curve(X, y, seeds):
    """Mean Spearman on the unseen models, per training fraction, for ours and the 2021 GP."""
    ours, old = {}, {}
    for frac in FRACTIONS:
        n = max(3, round(frac * len(y)))
        r_ours, r_old = [], []
        for s in range(seeds):
            perm = np.random.default_rng(s).permutation(len(y))
            tr, te = perm[:n], perm[n:]
            r_ours.append(rank_quality(GPSurrogate(random_state=s).fit(X[tr], y[tr]).predict(X[te])[0], y[te])[0])
            r_old.append(rank_quality(gp2021(X[tr], y[tr], X[te]), y[te])[0])
        ours[frac], old[frac] = float(np.mean(r_ours)), float(np.mean(r_old))
        print(f"  {frac:4.0%} ({n:3d} trained): Spearman ours {ours[frac]:.3f} +- {np.std(r_ours):.3f}"
              f"   2021 GP {old[frac]:.3f}", flush=True)
    return ours, old


def queries_to_best(table, acquisition, seed):
    """Proposals after the start until a model of the best measured value is trained."""
    measured, values = table.measured, table.values
    best = np.nanmax(values)
    start = np.random.default_rng(10_000 + seed).choice(measured, N_INIT, replace=False).tolist()
    learner = ActiveLearner(table.cards, table.embeddings, seeds=start, candidates=measured,
                            neighbors=table.neighbors, acquisition=acquisition, seed=seed, cv_folds=0)
    for i in start:
        learner.tell(i, values[i])
    if any(values[i] == best for i in start):
        return 0
    learner.refit()
    queries = 0
    while True:
        p = learner.ask()
        queries += 1
        learner.tell(p.index, values[p.index])
        if values[p.index] == best:
            return queries
        if acquisition != "random":  # random proposals never read the surrogate
            learner.refit()


def uniform_random_queries(table, seed):
    """Plain random search from the same start: position of the first best model in a random order."""
    values, best = table.values, np.nanmax(table.values)
    start = np.random.default_rng(10_000 + seed).choice(table.measured, N_INIT, replace=False).tolist()
    if any(values[i] == best for i in start):
        return 0
    rest = np.random.default_rng(20_000 + seed).permutation([i for i in table.measured if i not in start])
    return int(np.flatnonzero(values[rest] == best)[0]) + 1


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=str(STUDY_JSON))
    ap.add_argument("--task", default="SST-2")
    ap.add_argument("--seeds", type=int, default=20)
    args = ap.parse_args()
    table = load_table(args.table, args.task)
    if table.embeddings is None:
        sys.exit(f"{args.table} has no embeddings")
    m = table.measured
    X, y = table.embeddings[m], table.values[m]
    print(f"{args.table} [{table.task}]: {len(table.cards)} models, {len(m)} measured, best {y.max():.4f} "
          f"({int((y == y.max()).sum())} models)")

    t0 = time.perf_counter()
    print("(1) held-out Spearman vs trained fraction (mean over seeds)")
    ours, old = held_out_curve(X, y, args.seeds)

    print("(2) queries to reach a best measured model")
    queries = {a: [] for a in ACQUISITIONS}
    uniform = []
    for s in range(args.seeds):
        for a in ACQUISITIONS:
            queries[a].append(queries_to_best(table, a, s))
        uniform.append(uniform_random_queries(table, s))
        print(f"  seed {s:2d}: " + "  ".join(f"{a} {queries[a][-1]:3d}" for a in ACQUISITIONS)
              + f"  uniform-random {uniform[-1]:3d}", flush=True)
    base, base_uniform = float(np.mean(queries["random"])), float(np.mean(uniform))
    ratios = {a: float(np.mean(queries[a])) / base for a in ACQUISITIONS if a != "random"}
    print(f"  {'uniform':12s} mean {base_uniform:6.1f}  median {np.median(uniform):6.1f}  (random search, no constraint)")
    for a in ACQUISITIONS:
        q = np.asarray(queries[a])
        print(f"  {a:12s} mean {q.mean():6.1f}  median {np.median(q):6.1f}"
              + (f"  ratio of means vs random {ratios[a]:.3f}, vs uniform {q.mean() / base_uniform:.3f}"
                 if a in ratios else "  (baseline)"))
    print(f"wall {time.perf_counter() - t0:.0f} s")
    summary({
        "spearman_at_30pct": round(ours[0.3], 4),
        "spearman_at_30pct_gp2021": round(old[0.3], 4),
        "spearman_by_fraction": {f"{f:g}": round(v, 4) for f, v in ours.items()},
        "queries_random_mean": round(base, 1),
        "queries_ratio_ucb": round(ratios["ucb"], 4),
        "queries_ratio_ei": round(ratios["ei"], 4),
        "queries_ratio_uncertainty": round(ratios["uncertainty"], 4),
        "queries_uniform_random_mean": round(base_uniform, 1),
        **{f"queries_ratio_{a}_vs_uniform": round(float(np.mean(queries[a])) / base_uniform, 4)
           for a in ("ucb", "ei", "uncertainty")},
        "seeds": args.seeds,
    })


if __name__ == "__main__":
    main()
