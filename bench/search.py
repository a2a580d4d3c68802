"""Replay benchmark of the surrogate and the active learner on a measured table (default: the study's SST-2).

(1) Surrogate quality. Held-out Spearman after fitting a random fraction of the measured
models (mean and 95% CI over seeds), for the search's inputs (embedding + card statistics,
``flexibert.search.features``), the embedding alone, and the 2021 GP (sklearn's then-default
fixed 1.0 * RBF(1.0) on the embedding). Then grouped cross-validation: leave one depth,
one first-layer width or one first feed-forward width out, fit on the rest and rank the
held-out group, which asks whether the surrogate carries across structure.

(2) Search, as ``flexibert run`` does it. Every method starts from the space's seed models
(``flexibert.space.seeds.SEED_CARDS``: BERT-Tiny, BERT-Mini, BERT-L2-H256, BERT-L4-H128), plus
``--random-init N`` random measured models drawn per bench seed (the same ones for every
method within a bench seed); the start counts as queries. ``--random-init`` defaults to 0
because a real run starts from the seeds alone: the replay then measures the protocol users
get, not a friendlier one. From a fixed start ucb, ei and uncertainty are deterministic, so
every bench seed repeats one search and their CI is 0: that is a single search, not a precise
one; ``--random-init N`` varies the start per bench seed to ask how much it matters. The
acquisitions run the real ask/tell learner (overlap constraint and relaxation included;
``random`` is the learner's random acquisition under that constraint); the named baseline
``uniform`` trains the same start, then uniformly random measured models, run here in the
same process.

Seeds. A seed the table measures is started from. One it lacks (not in the table, or in it
but never measured: a replay cannot train it) is replaced by the measured model nearest the
seed card in card statistics counted in doublings (log2 of depth, of the mean, smallest and
largest width, head count and feed-forward width, plus the fraction of WMA layers; ties to the
lower index), and the bench prints which. ``--seeds-from FILE`` (YAML or JSON: a list, or a
mapping with a ``seeds`` list, of seed names or cards ``{l, a, h, f, s}``) names a table's own
seeds instead; those must be measured, or the bench stops with one line (you named them). The
space YAML has no seeds of its own, as in ``flexibert run``.

Metrics after 25, 50, 100 and 200 queries, mean and 95% CI over bench seeds (NAS-Bench style):
- regret: the table's best measured value minus the best value trained so far;
- non-seed regret: B_ns - b_ns(n), with B_ns the best value among the measured models that are
  not seed models (the start's random extras are not seeds) and b_ns(n) the best value among
  the non-seed models in the first n queries. A seed that is itself the table's best (on the
  study's SST-2, BERT-L2-H256 ties for best) sets every method's plain regret to 0 from the
  first query; this one asks what the search found beyond its start. Defined once the budget
  exceeds the seeds, which the bench checks;
- top-1% hit rate: the fraction of bench seeds that trained a model among the table's best 1%
  (ties at the cut included); printed also for non-seed models alone;
- mean of the best k found (k = 5): the mean true value of the k best models trained so far.
Ratios are against uniform's mean in the same process, and null where uniform's is 0.

(3) Wall clock: two asynchronous workers, each trial taking a simulated time proportional
to the model's FLOPs (the median measured model takes 1 unit), from the same start. The
learner proposes whenever a worker frees up, with the other worker's model busy. Regret and
non-seed regret after 10 and 25 units (25 units: the time two workers need for about 50
median models).

A table without embeddings is embedded through the space library: give ``--space``.

    python bench/search.py [--table PATH --task NAME --space YAML --seeds 20 --inputs chosen
                            --seeds-from FILE --random-init 0]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import STUDY_JSON, ci95, summary  # noqa: E402

from flexibert._common import FlexiBertError  # noqa: E402
from flexibert.search.features import surrogate_inputs  # noqa: E402
from flexibert.search.learner import ActiveLearner  # noqa: E402
from flexibert.search.surrogate import GPSurrogate, rank_quality  # noqa: E402
from flexibert.search.tables import load_table  # noqa: E402
from flexibert.space.design_space import DesignSpace, ModelCard  # noqa: E402
from flexibert.space.seeds import SEED_CARDS, card_name, seed_card  # noqa: E402

FRACTIONS = (0.1, 0.3)
GROUPINGS = {"depth": lambda c: c.l, "first_width": lambda c: c.h[0], "first_ff": lambda c: c.f[0]}
ACQUISITIONS = ("ucb", "ei", "uncertainty", "random")
METHODS = ACQUISITIONS + ("uniform",)
BASELINE = "uniform"
BUDGETS = (25, 50, 100, 200)
RATIO_AT = (50, 100)  # budgets whose ratios against the baseline go into the JSON line
HIT_AT = 100
BEST_K = 5
RANDOM_INIT = 0  # random measured models added to the seeds: none, as in ``flexibert run``
WORKERS = 2
HORIZONS = (10.0, 25.0)  # simulated time units (the median measured model's duration)


@dataclass
class Problem:
    """Cards, their surrogate inputs and neighbours, the measured values (NaN where unmeasured),
    and the start: the seed models (indices) and how many random measured models join them."""

    cards: list[ModelCard]
    embeddings: np.ndarray
    chosen: np.ndarray  # embedding + card statistics, scaled by the space (else by all the cards)
    X: np.ndarray  # the search's surrogate inputs under --inputs: ``chosen`` or ``embeddings``
    neighbors: np.ndarray | None
    values: np.ndarray
    seeds: list[int]
    random_init: int = RANDOM_INIT
    seed_notes: tuple[str, ...] = ()  # one line per seed replaced by its nearest measured model

    @property
    def measured(self) -> np.ndarray:
        return np.flatnonzero(~np.isnan(self.values))

    @property
    def nonseed(self) -> np.ndarray:
        """Measured models that are not seed models."""
        return np.setdiff1d(self.measured, self.seeds)


def load_problem(table: str, task: str, space: str | None = None, rule: str = "monotone",
                 library: str = "runs/spaces", inputs: str = "chosen", seeds_from: str | None = None,
                 random_init: int = RANDOM_INIT) -> Problem:
    """The table's cards and embeddings, or, without embeddings, the space library's (built if needed)."""
    tab = load_table(table, task)
    spc = DesignSpace.from_yaml(space, rule=rule) if space else None
    if tab.embeddings is not None:
        cards, emb, neighbors, values = tab.cards, tab.embeddings, tab.neighbors, tab.values
    else:
        if spc is None:
            raise FlexiBertError(f"measured table {tab.path} has no embeddings: give --space to embed its models")
        from flexibert.space.library import build_space

        lib = build_space(spc, library)
        cards, emb, neighbors = lib.cards, lib.embeddings, lib.neighbours
        where = {c.key: i for i, c in enumerate(cards)}
        values = np.full(len(cards), np.nan)
        for i in tab.measured:
            if tab.cards[i].key not in where:
                raise FlexiBertError(f"measured model {tab.cards[i]} is not in the space {space}")
            values[where[tab.cards[i].key]] = tab.values[i]
    emb = np.asarray(emb, dtype=float)
    chosen = surrogate_inputs(cards, emb, spc)
    values = np.asarray(values, dtype=float)
    wanted = listed_seeds(seeds_from) if seeds_from else list(SEED_CARDS.values())
    seeds, notes = resolve_seeds(list(cards), values, wanted, strict=bool(seeds_from))
    if random_init < 0 or random_init > len(np.setdiff1d(np.flatnonzero(~np.isnan(values)), seeds)):
        raise FlexiBertError(f"--random-init {random_init}: needs 0 <= N <= the measured non-seed models")
    return Problem(list(cards), emb, chosen, chosen if inputs == "chosen" else emb, neighbors, values,
                   seeds, random_init, tuple(notes))


# -- the start ------------------------------------------------------------------------------------
def listed_seeds(path: str) -> list[ModelCard]:
    """Seed cards from a YAML or JSON file: a list (or ``{seeds: [...]}``) of seed names or cards."""
    import yaml

    f = Path(path)
    if not f.is_file():
        raise FlexiBertError(f"--seeds-from {path}: no such file")
    data = yaml.safe_load(f.read_text())
    if isinstance(data, dict) and "seeds" in data:
        data = data["seeds"]
    if not isinstance(data, list) or not data:
        raise FlexiBertError(f"--seeds-from {path}: expected a non-empty list of seed names or cards {{l, a, h, f, s}}")
    return [seed_card(x) if isinstance(x, str) else ModelCard.from_dict(x) for x in data]


def card_doublings(c: ModelCard) -> np.ndarray:
    """A card's size in doublings: log2 of depth and of the mean, smallest and largest width, heads and
    feed-forward width, then the fraction of WMA layers (the card statistics of ``search.features``)."""
    logs = [np.log2(np.asarray(v, dtype=float)) for v in (c.h, c.a, c.f)]
    return np.array([np.log2(c.l), *[g(x) for x in logs for g in (np.mean, np.min, np.max)],
                     c.s.count("wma") / c.l])


def resolve_seeds(cards: list[ModelCard], values: np.ndarray, wanted: list[ModelCard],
                  strict: bool) -> tuple[list[int], list[str]]:
    """Indices of the measured ``wanted`` seed cards; a missing one (not in the table, or unmeasured) is
    an error when ``strict`` (the user named it), else replaced by the nearest measured model, once."""
    where = {c.key: i for i, c in enumerate(cards)}
    measured = np.flatnonzero(~np.isnan(values))
    found = {k: where[c.key] for k, c in enumerate(wanted) if c.key in where and not np.isnan(values[where[c.key]])}
    missing = [k for k in range(len(wanted)) if k not in found]
    if missing and strict:
        c = wanted[missing[0]]
        why = "not in the table" if c.key not in where else "in the table but not measured"
        raise FlexiBertError(f"seed model {c} is {why}: a replay can only start from measured models")
    taken = set(found.values())
    notes = []
    if missing:
        size = np.array([card_doublings(cards[i]) for i in measured])
        for k in missing:
            free = np.array([i not in taken for i in measured])
            if not free.any():
                raise FlexiBertError(f"the table measures too few models to stand in for the seed {wanted[k]}")
            dist = np.where(free, np.linalg.norm(size - card_doublings(wanted[k]), axis=1), np.inf)
            j = int(measured[int(np.argmin(dist))])
            found[k] = j
            taken.add(j)
            why = "not in the table" if wanted[k].key not in where else "not measured"
            notes.append(f"seed {card_name(wanted[k])} {wanted[k]} is {why}: "
                         f"started from the nearest measured model #{j} {cards[j]} instead")
    seeds = []
    for k in range(len(wanted)):
        if found[k] not in seeds:  # a seed listed twice is trained once
            seeds.append(found[k])
    return seeds, notes


def start_models(p: Problem, seed: int) -> list[int]:
    """The seed models, then ``p.random_init`` random measured non-seed models drawn by the bench seed."""
    extra = np.random.default_rng(10_000 + seed).choice(p.nonseed, p.random_init, replace=False)
    return list(p.seeds) + [int(i) for i in extra]


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
def uniform_order(p: Problem, seed: int) -> list[int]:
    start = start_models(p, seed)
    rest = np.random.default_rng(20_000 + seed).permutation(np.setdiff1d(p.measured, start))
    return start + [int(i) for i in rest]


def learner_for(p: Problem, acquisition: str, seed: int) -> ActiveLearner:
    return ActiveLearner(p.cards, p.X, seeds=start_models(p, seed), candidates=p.measured, neighbors=p.neighbors,
                         acquisition=acquisition, seed=seed, cv_folds=0)


def sequential(p: Problem, method: str, seed: int, budget: int) -> list[int]:
    """The models trained, in order (the start first), one worker, up to ``budget`` queries."""
    budget = min(budget, len(p.measured))
    if method == BASELINE:
        return uniform_order(p, seed)[:budget]
    al = learner_for(p, method, seed)
    for i in al.seeds:
        al.tell(i, p.values[i])
    al.refit()
    while len(al.trained) < budget:
        q = al.ask()
        al.tell(q.index, p.values[q.index])
        if method != "random":  # random proposals never read the surrogate
            al.refit()
    return list(al.trained)


def search_orders(p: Problem, seeds: int, budget: int, methods=METHODS) -> dict[str, list[list[int]]]:
    """Per method, per bench seed: the models trained in order."""
    return {m: [sequential(p, m, s, budget) for s in range(seeds)] for m in methods}


def top_cut(p: Problem) -> float:
    """The smallest value among the table's best 1% (ties at the cut count as top 1%)."""
    y = np.sort(p.values[p.measured])[::-1]
    return float(y[int(np.ceil(0.01 * len(y))) - 1])


def metrics_of(p: Problem, order: list[int], n: int, cut: float) -> dict[str, float]:
    """The search metrics after the first ``n`` queries of ``order`` (see the module docstring)."""
    seen = np.asarray(order[:n], dtype=int)
    vals = p.values[seen]
    is_seed = np.isin(seen, p.seeds)
    ns = vals[~is_seed]
    return {
        "regret": float(np.nanmax(p.values) - vals.max()),
        "nonseed_regret": float(p.values[p.nonseed].max() - ns.max()) if len(ns) else float("nan"),
        "hit": float((vals >= cut - 1e-12).any()),
        "nonseed_hit": float((ns >= cut - 1e-12).any()),
        "best_k": float(np.sort(vals)[::-1][:BEST_K].mean()),
    }


METRICS = ("regret", "nonseed_regret", "hit", "nonseed_hit", "best_k")


def search_metrics(p: Problem, orders: dict[str, list[list[int]]],
                   budgets=BUDGETS) -> dict[str, dict[str, dict[int, np.ndarray]]]:
    """metric -> method -> budget -> one value per bench seed."""
    if min(budgets) <= len(p.seeds):
        raise FlexiBertError(f"budgets {list(budgets)}: each must exceed the {len(p.seeds)} seed models")
    cut = top_cut(p)
    out: dict = {k: {m: {} for m in orders} for k in METRICS}
    for m, runs in orders.items():
        for b in budgets:
            rows = [metrics_of(p, o, b, cut) for o in runs]
            for k in METRICS:
                out[k][m][b] = np.array([r[k] for r in rows])
    return out


def ratio(num: float, den: float) -> float | None:
    """``num / den`` rounded, or None (JSON null) where the baseline's ``den`` is 0 or not finite."""
    if not (np.isfinite(num) and np.isfinite(den)) or den <= 0:
        return None
    return round(float(num) / float(den), 4)


def search_figures(res: dict[str, dict[str, dict[int, np.ndarray]]], budgets=BUDGETS,
                   ratio_at=RATIO_AT, hit_at=HIT_AT) -> dict:
    """The search part of the JSON line: per method and budget, and ratios against the baseline."""
    fig: dict = {}
    methods = list(res["regret"])
    for m in methods:
        for b in budgets:
            fig[f"regret_at_{b}_{m}"] = round(float(res["regret"][m][b].mean()), 5)
            fig[f"nonseed_regret_at_{b}_{m}"] = round(float(res["nonseed_regret"][m][b].mean()), 5)
        for b in ratio_at:
            fig[f"best{BEST_K}_mean_at_{b}_{m}"] = round(float(res["best_k"][m][b].mean()), 5)
        if hit_at in budgets:
            fig[f"top1pct_hit_at_{hit_at}_{m}"] = round(float(res["hit"][m][hit_at].mean()), 3)
            fig[f"nonseed_top1pct_hit_at_{hit_at}_{m}"] = round(float(res["nonseed_hit"][m][hit_at].mean()), 3)
        if m == BASELINE:
            continue
        for b in ratio_at:
            fig[f"regret_ratio_at_{b}_{m}"] = ratio(res["regret"][m][b].mean(), res["regret"][BASELINE][b].mean())
            fig[f"nonseed_regret_ratio_at_{b}_{m}"] = ratio(res["nonseed_regret"][m][b].mean(),
                                                             res["nonseed_regret"][BASELINE][b].mean())
    return fig


def asynchronous(p: Problem, method: str, seed: int, duration: np.ndarray,
                 horizon: float) -> list[tuple[float, int]]:
    """(finish time, model) of every trial finished by ``horizon`` with ``WORKERS`` workers."""
    order = iter(uniform_order(p, seed)) if method == BASELINE else None
    al = None if method == BASELINE else learner_for(p, method, seed)
    running: dict[int, float] = {}
    done: list[tuple[float, int]] = []
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
        done.append((now, index))
        if al is not None:
            al.tell(index, p.values[index])
            if method != "random" or al.snapshot is None:
                al.refit()


def table_rows(res, metric: str, budgets, scale: float, fmt: str, ratio_at: int | None) -> list[str]:
    rows = []
    for m in res[metric]:
        cells = "  ".join(f"@{b}: {res[metric][m][b].mean() * scale:{fmt}}+-{ci95(res[metric][m][b]) * scale:{fmt}}"
                          for b in budgets)
        tail = ""
        if ratio_at is not None:
            r = ratio(res[metric][m][ratio_at].mean(), res[metric][BASELINE][ratio_at].mean())
            tail = ("  (baseline)" if m == BASELINE else
                    f"  ratio @{ratio_at}: " + ("n/a (baseline 0)" if r is None else f"{r:.3f}"))
        rows.append(f"    {m:12s} {cells}{tail}")
    return rows


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
    ap.add_argument("--seeds", type=int, default=20, help="bench seeds (repetitions)")
    ap.add_argument("--seeds-from", default=None, metavar="FILE",
                    help="YAML/JSON list of the seed models to start from (names or cards); default: the study's "
                         "four, each missing one replaced by the nearest measured model")
    ap.add_argument("--random-init", type=int, default=RANDOM_INIT, metavar="N",
                    help=f"random measured models added to the seeds' start (default {RANDOM_INIT}, as a run)")
    args = ap.parse_args()
    if args.seeds < 2:
        ap.error("--seeds must be >= 2 (a 95%% CI needs two)")
    try:
        p = load_problem(args.table, args.task, args.space, args.rule, args.library, args.inputs,
                         args.seeds_from, args.random_init)
        if min(BUDGETS) <= len(p.seeds) + p.random_init:
            raise FlexiBertError(f"the start ({len(p.seeds)} seeds + {p.random_init} random) must be smaller "
                                 f"than the first budget, {min(BUDGETS)}")
    except FlexiBertError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    m = p.measured
    y = p.values[m]
    best = float(y.max())
    cut = top_cut(p)
    best_ns = float(p.values[p.nonseed].max())
    print(f"{args.table} [{args.task}]: {len(p.cards)} models, {len(m)} measured, best {best:.4f}, best non-seed "
          f"{best_ns:.4f}; top 1%: value >= {cut:.4f} ({int((y >= cut).sum())} models); search inputs: {args.inputs}")
    print("start: " + ", ".join(f"#{i} {card_name(p.cards[i])} {p.values[i]:.4f}" for i in p.seeds)
          + f" + {p.random_init} random measured model(s) per bench seed")
    for note in p.seed_notes:
        print(f"  {note}")
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

    print(f"(2) search after n queries (the start included), mean +- 95% CI over {args.seeds} seeds", flush=True)
    res = search_metrics(p, search_orders(p, args.seeds, max(BUDGETS)), BUDGETS)
    print(f"  regret vs the table's best ({best:.4f}), accuracy points")
    print("\n".join(table_rows(res, "regret", BUDGETS, 100, ".2f", HIT_AT)))
    print(f"  non-seed regret vs the best non-seed model ({best_ns:.4f}), accuracy points")
    print("\n".join(table_rows(res, "nonseed_regret", BUDGETS, 100, ".2f", HIT_AT)))
    print(f"  top-1% hit rate (any model trained >= {cut:.4f})")
    print("\n".join(table_rows(res, "hit", BUDGETS, 1, ".2f", None)))
    print("  top-1% hit rate by a non-seed model")
    print("\n".join(table_rows(res, "nonseed_hit", BUDGETS, 1, ".2f", None)))
    print(f"  mean true value of the best {BEST_K} trained (table's best {BEST_K}: "
          f"{np.sort(y)[::-1][:BEST_K].mean():.4f})")
    print("\n".join(table_rows(res, "best_k", BUDGETS, 1, ".4f", None)))
    print(f"  [{time.perf_counter() - t0:.0f} s]")

    print(f"(3) wall clock: {WORKERS} asynchronous workers, trial time ~ FLOPs (median measured model = 1 unit)",
          flush=True)
    from flexibert.model.cost import flops

    cost = np.array([flops(c) if np.isfinite(v) else np.nan for c, v in zip(p.cards, p.values)], dtype=float)
    duration = cost / np.nanmedian(cost)
    wall = {k: {mth: {h: [] for h in HORIZONS} for mth in METHODS} for k in ("regret", "nonseed_regret")}
    n_done = {mth: [] for mth in METHODS}
    for s in range(args.seeds):
        for mth in METHODS:
            done = asynchronous(p, mth, s, duration, max(HORIZONS))
            n_done[mth].append(len(done))
            for h in HORIZONS:
                idx = [i for t, i in done if t <= h]
                ns = [p.values[i] for i in idx if i not in p.seeds]
                wall["regret"][mth][h].append(best - max(p.values[idx]) if idx else float("nan"))
                wall["nonseed_regret"][mth][h].append(best_ns - max(ns) if ns else float("nan"))
    for k in wall:
        print(f"  {k.replace('_', ' ')}, accuracy points")
        for mth in METHODS:
            cells = "  ".join(f"@{h:g}: {np.mean(wall[k][mth][h]) * 100:.2f}+-{ci95(wall[k][mth][h]) * 100:.2f}"
                              for h in HORIZONS)
            print(f"    {mth:12s} {cells}  ({np.mean(n_done[mth]):.0f} trials finished by {max(HORIZONS):g})")
    print(f"wall {time.perf_counter() - t0:.0f} s")

    h_max = max(HORIZONS)
    figures = {
        "inputs": args.inputs,
        "seeds": args.seeds,
        "start_seed_models": len(p.seeds),
        "start_seeds_replaced": len(p.seed_notes),
        "random_init": p.random_init,
        "spearman_at_30pct": round(float(np.mean(rho[("chosen", 0.3)])), 4),
        "spearman_at_30pct_ci95": round(ci95(rho[("chosen", 0.3)]), 4),
        "spearman_at_30pct_embedding": round(float(np.mean(rho[("embedding", 0.3)])), 4),
        "spearman_at_30pct_gp2021": round(float(np.mean(rho[("gp2021", 0.3)])), 4),
        **{f"spearman_grouped_{g}": round(grp[("chosen", g)], 4) for g in GROUPINGS},
        **{f"spearman_grouped_{g}_embedding": round(grp[("embedding", g)], 4) for g in GROUPINGS},
        **search_figures(res),
    }
    for mth in METHODS:
        figures[f"wallclock_regret_at_{h_max:g}_{mth}"] = round(float(np.mean(wall["regret"][mth][h_max])), 5)
        figures[f"wallclock_nonseed_regret_at_{h_max:g}_{mth}"] = round(
            float(np.mean(wall["nonseed_regret"][mth][h_max])), 5)
    json.dumps(figures, allow_nan=False)  # no NaN or inf reaches the line: null stands for "no ratio"
    summary(figures)


if __name__ == "__main__":
    if "--ask-full" in sys.argv[1:]:  # the full-space ask timing lives in its own script
        import ask_full

        ask_full.main([a for a in sys.argv[1:] if a != "--ask-full"])
    else:
        main()
