"""The ask/tell learner on the study's table: seeds, acquisitions, overlap constraint, relaxation, stop rule."""

from __future__ import annotations

import numpy as np
import pytest

from flexibert._common import FlexiBertError
from flexibert.model.overlap import overlap
from flexibert.search.acquisition import expected_improvement
from flexibert.search.learner import ActiveLearner, RelaxationSchedule
from flexibert.search.surrogate import GPSurrogate
from flexibert.search.tables import load_table
from flexibert.space.seeds import SEED_CARDS

from .conftest import STUDY_JSON


@pytest.fixture(scope="module")
def table():
    return load_table(STUDY_JSON, "sst2")


def seed_indices(table):
    where = {c.key: i for i, c in enumerate(table.cards)}
    return [where[c.key] for c in SEED_CARDS.values()]


def learner(table, **kw):
    kw.setdefault("seeds", seed_indices(table))
    kw.setdefault("candidates", table.measured)
    kw.setdefault("cv_folds", 0)
    return ActiveLearner(table.cards, table.embeddings, neighbors=table.neighbors, **kw)


def trained_learner(table, n_extra=12, **kw):
    """Seeds plus the first ``n_extra`` other measured models told, surrogate fitted."""
    al = learner(table, **kw)
    told = list(al.seeds) + [int(i) for i in table.measured if i not in al.seeds][:n_extra]
    for i in told:
        al.tell(i, table.values[i])
    al.refit()
    return al


def posterior(al, table):
    """The learner's belief over its candidates, recomputed from its snapshot's hyperparameters."""
    idx = list(al.trained)
    gp = GPSurrogate(theta=al.snapshot.theta).fit(table.embeddings[idx], [al.trained[i] for i in idx])
    return gp.predict(table.embeddings[al.candidates])


def test_all_four_seeds_are_measured_and_proposed_first(table):
    al = learner(table)
    assert all(np.isfinite(table.values[s]) for s in al.seeds)
    first = [al.ask(busy=[]).index]
    first.append(al.ask(busy=first).index)  # a running seed is skipped
    assert first == al.seeds[:2]
    for s in al.seeds:
        al.tell(s, table.values[s])
    assert al.ask() is None  # results told but not yet fitted: nothing is proposed blind
    al.refit()
    p = al.ask()
    assert p.index not in al.seeds and p.source in al.seeds


def test_relaxation_schedule_levels():
    s = RelaxationSchedule()
    assert s.levels() == pytest.approx([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0])
    assert s.relax(0.0) is None
    assert RelaxationSchedule(start=0.9, step=0.25, floor=0.3).levels() == pytest.approx([0.9, 0.65, 0.4, 0.3])
    with pytest.raises(FlexiBertError):
        RelaxationSchedule(start=0.5, floor=0.6)


@pytest.mark.parametrize("acquisition", ["uncertainty", "ucb", "ei"])
def test_each_acquisition_proposes_its_best_qualifying_candidate(table, acquisition):
    al = trained_learner(table, acquisition=acquisition, beta=2.0)
    mean, std = posterior(al, table)
    best = max(al.trained.values())
    value = {"uncertainty": std, "ucb": mean + 2.0 * std, "ei": expected_improvement(mean, std, best)}[acquisition]
    free = [k for k, c in enumerate(al.candidates) if c not in al.trained]
    # Independently: walk thresholds down; at each, the highest-valued free candidate with a
    # trained neighbour (any trained model below 0.5) passing the threshold wins.
    for t in al.schedule.levels():
        ok = []
        for k in free:
            c = int(al.candidates[k])
            pool = list(al.trained) if t < 0.5 else [j for j in table.neighbors[c] if j in al.trained]
            if pool and max(overlap(table.cards[c], table.cards[j]) for j in pool) >= t - 1e-9:
                ok.append(k)
        if ok:
            break
    expected = int(al.candidates[max(ok, key=lambda k: value[k])])
    p = al.ask()
    assert p.index == expected and p.threshold == pytest.approx(t)
    assert p.overlap == pytest.approx(overlap(p.card, table.cards[p.source])) and p.overlap >= t - 1e-9
    assert p.source in al.trained


def test_random_acquisition_is_seeded_and_skips_busy(table):
    a, b = trained_learner(table, acquisition="random", seed=1), trained_learner(table, acquisition="random", seed=1)
    c = trained_learner(table, acquisition="random", seed=2)
    assert a.ask().index == b.ask().index
    picks = {a.ask().index, c.ask().index}
    assert all(i in set(table.measured) and i not in a.trained for i in picks)
    first = a.ask().index
    assert a.ask(busy=[first]).index != first


def test_threshold_relaxes_below_half_and_then_uses_any_trained_source(table):
    seeds = seed_indices(table)
    # Candidates none of whose ten neighbours is a seed: at 0.9 ... 0.5 nothing can qualify.
    far = [int(i) for i in table.measured if i not in seeds and not set(table.neighbors[i]) & set(seeds)][:40]
    al = learner(table, candidates=seeds + far, acquisition="ucb")
    for s in seeds:
        al.tell(s, table.values[s])
    al.refit()
    p = al.ask()
    assert p.threshold < 0.5 and al.threshold == p.threshold
    assert p.source not in set(table.neighbors[p.index])  # a non-neighbour source: only legal below 0.5
    best_any = max(overlap(table.cards[p.index], table.cards[s]) for s in seeds)
    assert p.overlap == pytest.approx(best_any)
    # Relaxation is persistent: the next ask starts from the relaxed threshold.
    al.tell(p.index, table.values[p.index])
    al.refit()
    assert al.ask().threshold <= p.threshold


def test_stop_rule_converged_and_exhausted(table):
    al = trained_learner(table, ci=1.0, min_trained=10)
    assert 1.96 * al.snapshot.max_sigma < 1.0 and al.stop_reason() == "converged"
    assert trained_learner(table, ci=1e-6).stop_reason() is None
    few = trained_learner(table, n_extra=2, ci=1.0, min_trained=10)
    assert few.stop_reason() is None  # too few results to tell signal from noise
    small = learner(table, candidates=seed_indices(table))
    for s in small.seeds:
        small.tell(s, table.values[s])
    assert small.stop_reason() == "exhausted"


def test_restored_learner_asks_the_same(table):
    a = trained_learner(table, acquisition="ei")
    b = learner(table, acquisition="ei")
    for i, v in a.trained.items():
        b.tell(i, v)
    b.restore(a.threshold, a.theta, a.n_optimized)
    b.refit()
    assert not b.snapshot.optimized and b.snapshot.theta == a.snapshot.theta
    assert b.ask() == a.ask()


def test_bad_inputs(table):
    with pytest.raises(FlexiBertError, match="one per card"):
        ActiveLearner(table.cards, table.embeddings[:10])
    with pytest.raises(FlexiBertError, match="seed models must be among"):
        learner(table, candidates=table.measured[:3], seeds=[int(table.measured[5])])
    al = learner(table)
    al.tell(0, 0.8)
    with pytest.raises(FlexiBertError, match="already told"):
        al.tell(0, 0.8)
    with pytest.raises(FlexiBertError, match="finite"):
        al.tell(1, float("nan"))
