"""Replay benchmark of the surrogate and the active learner on a measured table (default: the study's SST-2).

(1) Surrogate quality. Held-out Spearman after fitting a random fraction of the measured
models (mean and 95% CI over seeds), for the search's inputs (embedding + card statistics,
``flexibert.search.features``), the embedding alone, and the 2021 GP (sklearn's then-default
fixed 1.0 * RBF(1.0) on the embedding). Then grouped cross-validation: leave one depth,
one first-layer width or one first feed-forward width out, fit on the rest and rank the
held-out group, which asks whether the surrogate carries across structure.

(2) Search, as NAS benchmarks report it (NAS-Bench-101/201): simple regret (the table's
best value minus the best value trained so far) after 25, 50, 100 and 200 queries, and
the top-1% hit rate after 100 (the fraction of seeds that trained a model among the
table's best 1%), mean and 95% CI over seeds. Every seed starts from the same 4 random
measured models for every method, and they count as queries. The acquisitions run the
real ask/tell learner (overlap constraint and relaxation included; ``random`` is the
learner's random acquisition under that constraint); the named baseline is plain
uniform random search over the measured models, run here in the same process.

(3) Wall clock: two asynchronous workers, each trial taking a simulated time proportional
to the model's FLOPs (the median measured model takes 1 unit). The learner proposes
whenever a worker frees up, with the other worker's model busy. Regret after 10 and 25
units (25 units: the time two workers need for about 50 median models).

A table without embeddings is embedded through the space library: give ``--space``.

    python bench/search.py [--table PATH --task NAME --space YAML --seeds 20 --inputs chosen]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import STUDY_JSON, summary  # noqa: E402

from flexibert._common import FlexiBertError  # noqa: E402
from flexibert.search.features import surrogate_inputs  # noqa: E402
from flexibert.search.learner import ActiveLearner  # noqa: E402
from flexibert.search.surrogate import GPSurrogate, rank_quality  # noqa: E402
from flexibert.search.tables import load_table  # noqa: E402
from flexibert.space.design_space import DesignSpace, ModelCard  # noqa: E402

FRACTIONS = (0.1, 0.3)
GROUPINGS = {"depth": lambda c: c.l, "first_width": lambda c: c.h[0], "first_ff": lambda c: c.f[0]}
ACQUISITIONS = ("ucb", "ei", "uncertainty", "random")
METHODS = ACQUISITIONS + ("uniform",)
BUDGETS = (25, 50, 100, 200)
HIT_AT = 100
N_INIT = 4
WORKERS = 2
HORIZONS = (10.0, 25.0)  # simulated time units (the median measured model's duration)


@dataclass
class Problem:
    """Cards, their surrogate inputs and neighbours, and the measured values (NaN where unmeasured)."""

    cards: list[ModelCard]
    embeddings: np.ndarray
    chosen: np.ndarray  # embedding + card statistics, scaled by the space (else by all the cards)
    X: np.ndarray  # the search's surrogate inputs under --inputs: ``chosen`` or ``embeddings``
    neighbors: np.ndarray | None
    values: np.ndarray

    @property
    def measured(self) -> np.ndarray:
        return np.flatnonzero(~np.isnan(self.values))


def load_problem(args) -> Problem:
    """The table's cards and embeddings, or, without embeddings, the space library's (built if needed)."""
    table = load_table(args.table, args.task)
    space = DesignSpace.from_yaml(args.space, rule=args.rule) if args.space else None
    if table.embeddings is not None:
        cards, emb, neighbors, values = table.cards, table.embeddings, table.neighbors, table.values
    else:
        if space is None:
            raise FlexiBertError(f"measured table {table.path} has no embeddings: give --space to embed its models")
        from flexibert.space.library import build_space

        lib = build_space(space, args.library)
        cards, emb, neighbors = lib.cards, lib.embeddings, lib.neighbours
        where = {c.key: i for i, c in enumerate(cards)}
        values = np.full(len(cards), np.nan)
        for i in table.measured:
            if table.cards[i].key not in where:
                raise FlexiBertError(f"measured model {table.cards[i]} is not in the space {args.space}")
            values[where[table.cards[i].key]] = table.values[i]
    emb = np.asarray(emb, dtype=float)
    chosen = surrogate_inputs(cards, emb, space)
    return Problem(list(cards), emb, chosen, chosen if args.inputs == "chosen" else emb, neighbors, values)


def ci95(x) -> float:
    x = np.asarray(x, dtype=float)
    return float(1.96 * x.std(ddof=1) / np.sqrt(len(x))) if len(x) > 1 else 0.0


# -- (1) surrogate quality ------------------------------------------------------------------------
def gp2021(X, y, X_test):
    from sklearn.gaussian_process import GaussianProcessRegressor

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return GaussianProcessRegressor().fit(X, y).predict(X_test)  # kernel None: fixed 1.0 * RBF(1.0)


def held_out(inputs: dict[str, np.ndarray], y, seeds) -> dict[tuple[str, float], list[float]]:
    """Spearman on the unseen models per (inputs, training fraction), one value per seed."""
    out: dict[tuple[str, float], list[float]] = {}
    for frac in FRACTIONS:
        n = max(3, round(frac * len(y)))
        for s in range(seeds):
            perm = np.random.default_rng(s).permutation(len(y))
            tr, te = perm[:n], perm[n:]
            for name, X in inputs.items():
                pred = GPSurrogate(random_state=s).fit(X[tr], y[tr]).predict(X[te])[0]
                out.setdefault((name, frac), []).append(rank_quality(pred, y[te])[0])
            if frac == 0.3:
                emb = inputs["embedding"]
                out.setdefault(("gp2021", frac), []).append(rank_quality(gp2021(emb[tr], y[tr], emb[te]), y[te])[0])
    return out


def grouped(inputs: dict[str, np.ndarray], y, cards: list[ModelCard]) -> dict[tuple[str, str], float]:
    """Leave-one-group-out Spearman inside each held-out group, averaged over the groups."""
    out = {}
    for gname, key in GROUPINGS.items():
        labels = np.array([key(c) for c in cards])
        levels = [v for v in np.unique(labels) if 3 <= (labels == v).sum() <= len(y) - 3]
        for name, X in inputs.items():
            rhos = []
            for v in levels:
                te, tr = np.flatnonzero(labels == v), np.flatnonzero(labels != v)
                rhos.append(rank_quality(GPSurrogate().fit(X[tr], y[tr]).predict(X[te])[0], y[te])[0])
            out[(name, gname)] = float(np.mean(rhos)) if rhos else float("nan")
    return out


# -- (2) and (3) search ---------------------------------------------------------------------------
def start_models(p: Problem, seed: int) -> list[int]:
    return np.random.default_rng(10_000 + seed).choice(p.measured, N_INIT, replace=False).tolist()


def uniform_order(p: Problem, seed: int) -> list[int]:
    start = start_models(p, seed)
    rest = np.random.default_rng(20_000 + seed).permutation(np.setdiff1d(p.measured, start))
    return start + rest.tolist()


def learner_for(p: Problem, acquisition: str, seed: int) -> ActiveLearner:
    return ActiveLearner(p.cards, p.X, seeds=start_models(p, seed), candidates=p.measured, neighbors=p.neighbors,
                         acquisition=acquisition, seed=seed, cv_folds=0)


def sequential(p: Problem, method: str, seed: int, budget: int) -> np.ndarray:
    """Best value trained after each query (the start models included), one worker."""
    if method == "uniform":
        found = p.values[uniform_order(p, seed)[:budget]]
        return np.maximum.accumulate(found)
    al = learner_for(p, method, seed)
    for i in al.seeds:
        al.tell(i, p.values[i])
    al.refit()
    while len(al.trained) < min(budget, len(p.measured)):
        q = al.ask()
        al.tell(q.index, p.values[q.index])
        if method != "random":  # random proposals never read the surrogate
            al.refit()
    return np.maximum.accumulate(np.fromiter(al.trained.values(), dtype=float))


def asynchronous(p: Problem, method: str, seed: int, duration: np.ndarray, horizon: float) -> list[tuple[float, float]]:
    """(finish time, value) of every trial finished by ``horizon`` with ``WORKERS`` workers."""
    order = iter(uniform_order(p, seed)) if method == "uniform" else None
    al = None if method == "uniform" else learner_for(p, method, seed)
    running: dict[int, float] = {}
    done: list[tuple[float, float]] = []
    now = 0.0
    while True:
        while len(running) < WORKERS:
            if al is None:
                nxt = next(order, None)
            else:
                prop = al.ask(busy=running)
                nxt = None if prop is None else prop.index
            if nxt is None:
                break
            running[nxt] = now + duration[nxt]
        if not running:
            return done
        index = min(running, key=running.get)
        now = running.pop(index)
        if now > horizon:
            return done
        done.append((now, float(p.values[index])))
        if al is not None:
            al.tell(index, p.values[index])
            if method != "random" or al.snapshot is None:
                al.refit()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=str(STUDY_JSON))
    ap.add_argument("--task", default="SST-2")
    ap.add_argument("--space", default=None,
                    help="space YAML: scales the card statistics; embeds a table without embeddings")
    ap.add_argument("--rule", default="monotone", choices=("monotone", "full"))
    ap.add_argument("--library", default="runs/spaces", help="where the space library is built (with --space)")
    ap.add_argument("--inputs", default="chosen", choices=("chosen", "embedding"),
                    help="surrogate inputs of the search: embedding + card statistics, or the embedding alone")
    ap.add_argument("--seeds", type=int, default=20)
    args = ap.parse_args()
    if args.seeds < 2:
        ap.error("--seeds must be >= 2 (a 95% CI needs two)")
    try:
        p = load_problem(args)
    except FlexiBertError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    m = p.measured
    y = p.values[m]
    best = float(y.max())
    n_top = int(np.ceil(0.01 * len(y)))
    top_cut = float(np.sort(y)[::-1][n_top - 1])  # ties at the cut count as top 1%
    print(f"{args.table} [{args.task}]: {len(p.cards)} models, {len(m)} measured, best {best:.4f}; "
          f"top 1%: value >= {top_cut:.4f} ({int((y >= top_cut).sum())} models); search inputs: {args.inputs}")
    t0 = time.perf_counter()

    print(f"(1) held-out Spearman, mean +- 95% CI over {args.seeds} seeds", flush=True)
    inputs = {"chosen": p.chosen[m], "embedding": p.embeddings[m]}
    rho = held_out(inputs, y, args.seeds)
    for (name, frac), r in rho.items():
        n = max(3, round(frac * len(y)))
        print(f"  {name:10s} {frac:4.0%} ({n:3d} trained): {np.mean(r):.3f} +- {ci95(r):.3f}")
    grp = grouped(inputs, y, [p.cards[i] for i in m])
    for g in GROUPINGS:
        print(f"  leave-one-{g}-out: " + "  ".join(f"{name} {grp[(name, g)]:.3f}" for name in inputs))
    print(f"  [{time.perf_counter() - t0:.0f} s]")

    print(f"(2) simple regret after n queries (start of {N_INIT} included), mean +- 95% CI; top-1% hit at {HIT_AT}",
          flush=True)
    budget = max(BUDGETS)
    curves = {mth: [] for mth in METHODS}
    for s in range(args.seeds):
        for mth in METHODS:
            curves[mth].append(best - sequential(p, mth, s, budget))
    regret = {mth: {b: np.array([c[min(b, len(c)) - 1] for c in curves[mth]]) for b in BUDGETS} for mth in METHODS}
    hits = {mth: np.array([c[min(HIT_AT, len(c)) - 1] <= best - top_cut + 1e-12 for c in curves[mth]])
            for mth in METHODS}
    base = {b: float(regret["uniform"][b].mean()) for b in BUDGETS}
    for mth in METHODS:
        cells = "  ".join(f"@{b}: {regret[mth][b].mean() * 100:.2f}+-{ci95(regret[mth][b]) * 100:.2f}" for b in BUDGETS)
        ratio = regret[mth][100].mean() / base[100] if base[100] > 0 else float("nan")
        print(f"  {mth:12s} regret (accuracy points) {cells}  hit {hits[mth].sum()}/{args.seeds}"
              + ("  (baseline)" if mth == "uniform" else f"  ratio vs uniform @100: {ratio:.3f}"))
    print(f"  [{time.perf_counter() - t0:.0f} s]")

    print(f"(3) wall clock: {WORKERS} asynchronous workers, trial time ~ FLOPs (median measured model = 1 unit)",
          flush=True)
    from flexibert.model.cost import flops

    cost = np.array([flops(c) if np.isfinite(v) else np.nan for c, v in zip(p.cards, p.values)], dtype=float)
    duration = cost / np.nanmedian(cost)
    wall = {mth: {h: [] for h in HORIZONS} for mth in METHODS}
    n_done = {mth: [] for mth in METHODS}
    for s in range(args.seeds):
        for mth in METHODS:
            done = asynchronous(p, mth, s, duration, max(HORIZONS))
            n_done[mth].append(len(done))
            for h in HORIZONS:
                vals = [v for t, v in done if t <= h]
                wall[mth][h].append(best - max(vals) if vals else float("nan"))
    for mth in METHODS:
        cells = "  ".join(f"@{h:g}: {np.mean(wall[mth][h]) * 100:.2f}+-{ci95(wall[mth][h]) * 100:.2f}"
                          for h in HORIZONS)
        print(f"  {mth:12s} regret {cells}  ({np.mean(n_done[mth]):.0f} trials finished by {max(HORIZONS):g})")
    print(f"wall {time.perf_counter() - t0:.0f} s")

    h_max = max(HORIZONS)
    figures = {
        "inputs": args.inputs,
        "seeds": args.seeds,
        "spearman_at_30pct": round(float(np.mean(rho[("chosen", 0.3)])), 4),
        "spearman_at_30pct_ci95": round(ci95(rho[("chosen", 0.3)]), 4),
        "spearman_at_30pct_embedding": round(float(np.mean(rho[("embedding", 0.3)])), 4),
        "spearman_at_30pct_gp2021": round(float(np.mean(rho[("gp2021", 0.3)])), 4),
        **{f"spearman_grouped_{g}": round(grp[("chosen", g)], 4) for g in GROUPINGS},
        **{f"spearman_grouped_{g}_embedding": round(grp[("embedding", g)], 4) for g in GROUPINGS},
    }
    for mth in METHODS:
        for b in BUDGETS:
            figures[f"regret_at_{b}_{mth}"] = round(float(regret[mth][b].mean()), 5)
        figures[f"top1pct_hit_at_100_{mth}"] = round(float(hits[mth].mean()), 3)
        figures[f"wallclock_regret_at_{h_max:g}_{mth}"] = round(float(np.mean(wall[mth][h_max])), 5)
        if mth != "uniform":
            figures[f"regret_ratio_at_100_{mth}"] = (round(float(regret[mth][100].mean()) / base[100], 4)
                                                     if base[100] > 0 else None)
    summary(figures)


if __name__ == "__main__":
    if "--ask-full" in sys.argv[1:]:  # the full-space ask timing lives in its own script
        import ask_full

        ask_full.main([a for a in sys.argv[1:] if a != "--ask-full"])
    else:
        main()
