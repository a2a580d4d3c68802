"""Transformer2vec against the study's embedding error and scikit-learn's MDS as the oracle."""

from __future__ import annotations

import numpy as np
import pytest

from flexibert.space.embed import (
    frobenius_error,
    landmark_embed,
    mds,
    nearest_neighbours,
    pairwise_distances,
    stress_and_gradient,
)
from flexibert.space.graphs import card_to_graph
from flexibert.space.kernel import dissimilarity, wl_features, wl_kernel


@pytest.fixture(scope="module")
def features(small_space):
    return wl_features([card_to_graph(c) for c in small_space])


@pytest.fixture(scope="module")
def d_full(features):
    return dissimilarity(wl_kernel(features))


def test_study_embeddings_reproduce_the_readme_error(study, d_full):
    """Our kernel plus the study's coordinates give the README's 77.06 of 1303.8: same D as the study."""
    assert frobenius_error(d_full, np.array(study["embeddings"])) == pytest.approx(77.06, abs=0.01)
    assert np.linalg.norm(d_full) == pytest.approx(1303.8, abs=0.1)


def test_m8_error_beats_the_study(d_full):
    x = mds(d_full, 8, seed=0)
    assert x.shape == (2037, 8)
    assert frobenius_error(d_full, x) <= 77.1


def test_stress_and_gradient_match_sklearn_and_finite_differences(d_full):
    from sklearn.manifold import smacof

    d = d_full[:120, :120]
    rng = np.random.default_rng(1)
    x0 = rng.uniform(size=(120, 3))
    # scikit-learn reports the stress of the configuration it returns.
    x1, sk_stress = smacof(d, n_components=3, init=x0, n_init=1, max_iter=1, normalized_stress=False)
    assert stress_and_gradient(d, x1, np.empty_like(d))[0] == pytest.approx(sk_stress, rel=1e-9)
    ours, grad = stress_and_gradient(d, x0, np.empty_like(d))
    eps = 1e-6
    for i, j in [(0, 0), (5, 2), (119, 1)]:
        xp = x0.copy()
        xp[i, j] += eps
        xm = x0.copy()
        xm[i, j] -= eps
        fd = (stress_and_gradient(d, xp, np.empty_like(d))[0] - stress_and_gradient(d, xm, np.empty_like(d))[0]) / (
            2 * eps
        )
        assert grad[i, j] == pytest.approx(fd, rel=1e-5, abs=1e-6)


def test_mds_stress_no_worse_than_sklearn(d_full):
    from sklearn.manifold import MDS

    d = d_full[::6, ::6]
    ours = frobenius_error(d, mds(d, 4, seed=0))
    sk = MDS(n_components=4, metric="precomputed", n_init=4, max_iter=1000, init="random", random_state=0)
    ref = frobenius_error(d, sk.fit_transform(d))
    assert ours <= ref * 1.001


def test_neighbours_are_the_nearest_other_points():
    x = np.random.default_rng(0).normal(size=(300, 5))
    idx, dist = nearest_neighbours(x, 10)
    full = pairwise_distances(x)
    np.fill_diagonal(full, np.inf)
    brute = np.argsort(full, axis=1)[:, :10]
    assert (idx == brute).mean() > 0.99  # ties aside
    assert not (idx == np.arange(300)[:, None]).any()
    assert np.allclose(dist, np.sort(full, axis=1)[:, :10])


def test_landmark_embedding_never_forms_n_by_n_and_stays_accurate(features, d_full):
    emb = landmark_embed(features, m=8, n_landmarks=400, seed=0, chunk=300, n_pairs=20_000)
    assert emb.coords.shape == (2037, 8)
    dense_rel = 77.06 / np.linalg.norm(d_full)  # the study's in-sample relative error, 0.059
    assert emb.sample_rel_error < 2 * dense_rel
    # The sampled error agrees with the exact one over all pairs.
    exact = frobenius_error(d_full, emb.coords) / np.linalg.norm(d_full)
    assert emb.sample_rel_error == pytest.approx(exact, rel=0.1)
