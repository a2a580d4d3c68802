"""The replay benchmark (``bench/search.py``) follows the protocol of ``flexibert run``: every method
starts from the space's seed models, and ratios against the uniform baseline never divide by zero.

On the study's real SST-2 table; a few queries and two bench seeds keep it fast.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import numpy as np
import pytest

from flexibert._common import FlexiBertError
from flexibert.space.design_space import ModelCard
from flexibert.space.seeds import SEED_CARDS

from .conftest import ROOT, STUDY_JSON

_spec = importlib.util.spec_from_file_location("bench_search", ROOT / "bench" / "search.py")
bench = sys.modules["bench_search"] = importlib.util.module_from_spec(_spec)  # dataclasses look it up
_spec.loader.exec_module(bench)


@pytest.fixture(scope="module")
def problem():
    return bench.load_problem(str(STUDY_JSON), "SST-2")


@pytest.fixture(scope="module")
def with_extras():
    return bench.load_problem(str(STUDY_JSON), "SST-2", random_init=2)


def test_the_study_table_starts_from_its_four_seed_cards(problem):
    assert [problem.cards[i].key for i in problem.seeds] == [c.key for c in SEED_CARDS.values()]
    assert problem.seed_notes == ()
    assert not np.isnan(problem.values[problem.seeds]).any()


def test_every_method_starts_from_the_seed_models_and_the_same_random_ones(with_extras):
    p = with_extras
    orders = bench.search_orders(p, seeds=2, budget=len(p.seeds) + p.random_init + 2)
    starts = [bench.start_models(p, s) for s in range(2)]
    for s, start in enumerate(starts):
        assert start[:len(p.seeds)] == p.seeds
        assert len(set(start)) == len(p.seeds) + 2 and not set(start[len(p.seeds):]) & set(p.seeds)
        for method in bench.METHODS:
            assert orders[method][s][:len(start)] == start, method
    assert starts[0][len(p.seeds):] != starts[1][len(p.seeds):]  # the extras follow the bench seed


def test_ratio_is_null_where_uniform_regret_is_zero(problem):
    """BERT-L2-H256 is a seed and ties for the table's best: every method's plain regret is 0 from the
    start, so the regret ratio has no denominator; the non-seed regret still compares the searches."""
    budgets = (8, 12)
    res = bench.search_metrics(problem, bench.search_orders(problem, seeds=2, budget=max(budgets)), budgets)
    fig = bench.search_figures(res, budgets, ratio_at=(12,), hit_at=12)
    assert fig["regret_at_12_uniform"] == 0.0
    for method in bench.ACQUISITIONS:
        assert fig[f"regret_ratio_at_12_{method}"] is None
        assert fig[f"nonseed_regret_at_12_{method}"] >= 0
    assert fig["nonseed_regret_at_12_uniform"] > 0
    assert isinstance(fig["nonseed_regret_ratio_at_12_ucb"], float)
    json.dumps(fig, allow_nan=False)
    assert bench.ratio(0.0, 0.0) is None and bench.ratio(1.0, 0.0) is None and bench.ratio(1.0, 4.0) == 0.25


def test_nonseed_regret_ignores_the_seeds(problem):
    p = problem
    best_ns = int(p.nonseed[np.argmax(p.values[p.nonseed])])
    other = int(p.nonseed[np.argmin(p.values[p.nonseed])])
    cut = bench.top_cut(p)
    m = bench.metrics_of(p, p.seeds + [other, best_ns], len(p.seeds) + 1, cut)
    assert m["regret"] == pytest.approx(np.nanmax(p.values) - p.values[p.seeds].max())
    assert m["nonseed_regret"] == pytest.approx(p.values[best_ns] - p.values[other])
    assert m["nonseed_hit"] == 0.0
    top5 = np.sort(p.values[p.seeds + [other]])[::-1][:bench.BEST_K]
    assert m["best_k"] == pytest.approx(top5.mean())
    m = bench.metrics_of(p, p.seeds + [other, best_ns], len(p.seeds) + 2, cut)
    assert m["nonseed_regret"] == 0.0 and m["nonseed_hit"] == 1.0
    with pytest.raises(FlexiBertError, match="exceed"):
        bench.search_metrics(p, {"uniform": [p.seeds]}, (len(p.seeds),))


def test_a_missing_seed_starts_from_the_nearest_measured_model(problem):
    p = problem
    values = p.values.copy()
    values[p.seeds[0]] = np.nan  # BERT-Tiny unmeasured: a replay cannot train it
    seeds, notes = bench.resolve_seeds(p.cards, values, list(SEED_CARDS.values()), strict=False)
    assert seeds[1:] == p.seeds[1:] and not np.isnan(values[seeds[0]])
    sub = p.cards[seeds[0]]
    assert (sub.l, sub.h, sub.a, sub.f) == (2, (128, 128), (2, 2), (512, 512))  # BERT-Tiny with WMA
    assert len(notes) == 1 and "not measured" in notes[0]
    with pytest.raises(FlexiBertError, match="not measured"):
        bench.resolve_seeds(p.cards, values, list(SEED_CARDS.values()), strict=True)
    three = ModelCard.homogeneous(l=3, a=2, h=128, f=512)
    with pytest.raises(FlexiBertError, match="not in the table"):
        bench.resolve_seeds(p.cards, p.values, [three], strict=True)


def test_seeds_from_a_file(tmp_path, problem):
    mine = int(problem.nonseed[0])
    f = tmp_path / "seeds.yaml"
    f.write_text(json.dumps({"seeds": ["bert-mini", problem.cards[mine].to_dict()]}))
    p = bench.load_problem(str(STUDY_JSON), "SST-2", seeds_from=str(f))
    assert p.seeds == [problem.seeds[1], mine] and p.seed_notes == ()
