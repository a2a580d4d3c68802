"""The GP surrogate on the study's 620 measured SST-2 accuracies, and the acquisition functions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from scipy.stats import norm, spearmanr

from flexibert._common import FlexiBertError
from flexibert.search.acquisition import (
    ACQUISITIONS,
    expected_improvement,
    order,
    score,
)
from flexibert.search.surrogate import GPSurrogate, cross_validate


@pytest.fixture(scope="module")
def measured(study):
    acc = [a.get("SST-2") for a in study["accuracies"]]
    idx = np.array([i for i, v in enumerate(acc) if v is not None])
    return np.asarray(study["embeddings"])[idx], np.array([acc[i] for i in idx])


@pytest.fixture(scope="module")
def split(measured):
    X, y = measured
    perm = np.random.default_rng(7).permutation(len(y))
    n = round(0.3 * len(y))
    return X[perm[:n]], y[perm[:n]], X[perm[n:]], y[perm[n:]]


@pytest.fixture(scope="module")
def fitted(split):
    X, y, _, _ = split
    return GPSurrogate(random_state=0).fit(X, y)


def test_ranks_unseen_models_far_better_than_the_2021_gp(split, fitted):
    from sklearn.gaussian_process import GaussianProcessRegressor

    X, y, Xt, yt = split
    ours = spearmanr(fitted.predict(Xt)[0], yt)[0]
    old = spearmanr(GaussianProcessRegressor().fit(X, y).predict(Xt), yt)[0]  # fixed 1.0 * RBF(1.0)
    assert ours >= 0.5
    assert ours > old + 0.15


def test_predict_in_chunks_is_exact_and_std_is_latent(split, fitted):
    _, _, Xt, _ = split
    mean, std = fitted.predict(Xt)
    small = fitted.frozen().fit(*split[:2])
    small.chunk_size = 7
    m2, s2 = small.predict(Xt)
    np.testing.assert_allclose(m2, mean, rtol=0, atol=1e-12)
    np.testing.assert_allclose(s2, std, rtol=0, atol=1e-12)
    # sklearn's std includes the white noise once; ours removes exactly that variance.
    _, total = fitted.gp_.predict(Xt, return_std=True)
    np.testing.assert_allclose(std**2 + fitted.noise_, total**2, rtol=1e-9)
    assert fitted.noise_ > 0 and (std > 0).all()


def test_std_shrinks_where_models_were_measured(split, fitted):
    X, _, Xt, _ = split
    far = X.mean(axis=0) + 10 * X.std(axis=0)  # nothing measured out there
    assert fitted.predict(X[:20])[1].max() < fitted.predict(far[None])[1][0]


def test_frozen_kernel_reproduces_the_fit(split, fitted):
    X, y, Xt, _ = split
    again = fitted.frozen().fit(X, y)
    assert again.theta_ == fitted.theta_
    np.testing.assert_allclose(again.predict(Xt)[0], fitted.predict(Xt)[0], atol=1e-12)


def test_cross_validation_measures_ranking_and_can_fail(split, fitted):
    X, y, _, _ = split
    good = cross_validate(fitted.frozen(), X, y, folds=5, seed=0)
    assert good.n == len(y) and good.folds == 5
    assert good.spearman > 0.4 and good.kendall > 0.25 and 0 < good.mae < 0.02
    shuffled = np.random.default_rng(1).permutation(y)  # accuracies no longer belong to their models
    bad = cross_validate(fitted.frozen(), X, shuffled, folds=5, seed=0)
    assert bad.spearman < 0.2


@pytest.mark.parametrize(
    "X, y, message",
    [
        (np.ones((3, 2)), np.array([1.0, np.nan, 2.0]), "NaN"),
        (np.array([[np.inf, 1.0], [1.0, 1.0]]), np.array([1.0, 2.0]), "NaN or infinite"),
        (np.ones((3, 2)), np.ones(4), "one value per row"),
        (np.ones(3), np.ones(3), "2-d"),
        (np.ones((1, 2)), np.ones(1), "at least 2"),
    ],
)
def test_bad_input_is_a_clear_error(X, y, message):
    with pytest.raises(FlexiBertError, match=message):
        GPSurrogate().fit(X, y)


def test_predict_checks_its_input(fitted):
    with pytest.raises(FlexiBertError, match="before fit"):
        GPSurrogate().predict(np.ones((2, 8)))
    with pytest.raises(FlexiBertError, match="fitted on 8 features"):
        fitted.predict(np.ones((2, 3)))


# -- acquisitions ---------------------------------------------------------------------------------
def test_expected_improvement_matches_numeric_integration():
    mean, std, best = np.array([0.80, 0.82, 0.79]), np.array([0.01, 0.004, 0.02]), 0.81
    for m, s, ei in zip(mean, std, expected_improvement(mean, std, best)):
        direct = integrate.quad(lambda f: (f - best) * norm.pdf(f, m, s), best, m + 12 * s)[0]
        assert ei == pytest.approx(direct, rel=1e-6, abs=1e-12)
    assert expected_improvement(np.array([0.9, 0.7]), np.zeros(2), 0.8).tolist() == pytest.approx([0.1, 0.0])


def test_each_acquisition_orders_candidates_by_its_rule():
    rng = np.random.default_rng(0)
    mean, std = rng.normal(0.8, 0.01, 50), rng.uniform(0.001, 0.01, 50)
    best = 0.81
    assert order("uncertainty", mean, std, best, rng)[0] == np.argmax(std)
    assert order("ucb", mean, std, best, rng, beta=3.0)[0] == np.argmax(mean + 3.0 * std)
    assert order("ucb", mean, std, best, rng, beta=0.0)[0] == np.argmax(mean)
    assert order("ei", mean, std, best, rng)[0] == np.argmax(expected_improvement(mean, std, best))
    perm = order("random", mean, std, best, np.random.default_rng(1))
    assert sorted(perm.tolist()) == list(range(50))
    assert perm.tolist() != order("random", mean, std, best, np.random.default_rng(2)).tolist()
    assert set(ACQUISITIONS) == {"uncertainty", "ucb", "ei", "random"}
    with pytest.raises(FlexiBertError, match="unknown acquisition"):
        score("pi", mean, std, best, rng)
