"""Transformer2vec: metric MDS of the WL dissimilarity, neighbours, and a landmark route for huge spaces.

``smacof`` is the same Guttman-transform iteration as scikit-learn's
``sklearn.manifold.smacof`` (the tests use it as the oracle), written over one
preallocated n x n buffer, seeded from classical MDS and over-relaxed, so it needs far
fewer iterations than scikit-learn's random restarts to reach an equal or lower
stress. For spaces whose n x n matrix does not fit, ``landmark_embed`` runs SMACOF
on landmarks and places every other model against them alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import scipy.sparse as sp
from scipy.linalg import eigh

from flexibert.kernel import iter_kernel_rows, normalized_kernel_block, self_similarity

ProgressFn = Callable[[int, int], None]


def classical_mds(d: np.ndarray, m: int) -> np.ndarray:
    """Torgerson scaling: the top-m eigenvectors of the double-centred squared dissimilarities."""
    n = len(d)
    b = -0.5 * d**2
    b -= b.mean(axis=0)
    b -= b.mean(axis=1)[:, None]
    w, v = eigh(b, subset_by_index=[n - m, n - 1])
    return v[:, ::-1] * np.sqrt(np.clip(w[::-1], 0.0, None))


def pairwise_distances(x: np.ndarray, y: np.ndarray | None = None, out: np.ndarray | None = None) -> np.ndarray:
    """Euclidean distances between rows of x and rows of y (default x), into ``out`` if given."""
    y = x if y is None else y
    g = np.matmul(x, y.T, out=out)
    g *= -2.0
    g += np.einsum("ij,ij->i", x, x)[:, None]
    g += np.einsum("ij,ij->i", y, y)[None, :]
    np.maximum(g, 0.0, out=g)
    return np.sqrt(g, out=g)


def frobenius_error(d: np.ndarray, x: np.ndarray) -> float:
    """|D - D_hat|_F over the full matrix, the study's embedding error."""
    return float(np.linalg.norm(pairwise_distances(x) - d))


def _stress_and_guttman(d: np.ndarray, x: np.ndarray, buf: np.ndarray) -> tuple[float, np.ndarray]:
    """Raw stress of ``x`` (sum over pairs i<j of (d_ij - |x_i - x_j|)^2) and its Guttman transform B(X) X / n.

    One pass over ``buf`` (n x n scratch) gives both, so an iteration costs two
    n x n x m products and a few elementwise sweeps.
    """
    n = len(d)
    dist = pairwise_distances(x, out=buf)
    np.fill_diagonal(dist, 1.0)
    stress = float(((dist - d) ** 2).sum() - ((1.0 - np.diag(d)) ** 2).sum()) / 2
    np.divide(d, dist, out=buf)
    np.fill_diagonal(buf, 0.0)
    return stress, (buf.sum(axis=1)[:, None] * x - buf @ x) / n


def smacof(
    d: np.ndarray,
    init: np.ndarray,
    max_iter: int = 300,
    tol: float = 1e-6,
    relax: float = 1.0,
    progress: ProgressFn | None = None,
) -> tuple[np.ndarray, float, int]:
    """Metric SMACOF from ``init``; returns (X, raw stress of X, iterations).

    ``relax`` > 1 over-relaxes each step (X <- X + relax * (G(X) - X)), a standard
    acceleration; after a step that raises the stress it falls back to plain
    Guttman steps. Stops when the relative stress decrease falls below ``tol``.
    """
    x = np.array(init, dtype=np.float64)
    buf = np.empty_like(d)
    prev = np.inf
    it = 0
    for it in range(1, max_iter + 1):
        stress, g = _stress_and_guttman(d, x, buf)
        if stress > prev:
            relax = 1.0
        elif prev - stress <= tol * prev:
            return x, stress, it
        prev = stress
        x = x + relax * (g - x) if relax != 1.0 else g
        if progress:
            progress(it, max_iter)
    return x, _stress_and_guttman(d, x, buf)[0], it


def mds(d: np.ndarray, m: int = 8, max_iter: int = 3000, tol: float = 1e-7, seed: int = 0) -> np.ndarray:
    """Transformer2vec: classical-MDS start, then accelerated SMACOF. ``seed`` breaks ties in the start."""
    d = np.asarray(d, dtype=np.float64)
    if d.ndim != 2 or d.shape[0] != d.shape[1]:
        raise ValueError("dissimilarity must be a square matrix")
    x0 = classical_mds(d, m)
    x0 += np.random.default_rng(seed).normal(scale=1e-6, size=x0.shape)
    x, _, _ = smacof(d, x0, max_iter=max_iter, tol=tol, relax=1.8)
    return x


def dimension_sweep(d: np.ndarray, dims: Sequence[int], seed: int = 0, **kw) -> dict[int, float]:
    """Frobenius error |D - D_hat|_F for each embedding dimension, to choose the knee."""
    return {int(m): frobenius_error(d, mds(d, m, seed=seed, **kw)) for m in dims}


def nearest_neighbours(x: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The k nearest other models of every model in embedding space: (indices, distances)."""
    from sklearn.neighbors import NearestNeighbors

    k = min(k, len(x) - 1)
    nn = NearestNeighbors(n_neighbors=k + 1).fit(x)
    dist, idx = nn.kneighbors(x)
    # Drop each point itself (the first hit, unless an exact duplicate came first).
    keep = idx != np.arange(len(x))[:, None]
    keep[keep.sum(axis=1) > k, -1] = False
    return idx[keep].reshape(len(x), k), dist[keep].reshape(len(x), k)


@dataclass(frozen=True)
class LandmarkEmbedding:
    """Embedding of a space too large for n x n, with its quality on sampled pairs."""

    coords: np.ndarray
    landmarks: np.ndarray
    sample_rel_error: float


def _place(k_rows: np.ndarray, land_x: np.ndarray, land_pinv: np.ndarray, land_sq_mean: np.ndarray, iters: int):
    """Out-of-sample placement: landmark-MDS triangulation, then SMACOF with the landmarks fixed."""
    delta = np.clip(1.0 - k_rows, 0.0, None)
    x = -0.5 * (delta**2 - land_sq_mean) @ land_pinv
    n_land = land_x.shape[0]
    for _ in range(iters):
        dist = pairwise_distances(x, land_x)
        ratio = np.divide(delta, dist, out=np.zeros_like(dist), where=dist > 1e-12)
        # Guttman update for a free point against fixed anchors.
        x = (ratio.sum(axis=1)[:, None] * x - ratio @ land_x + land_x.sum(axis=0)) / n_land
    return x


def landmark_embed(
    features: sp.csr_matrix,
    m: int = 8,
    n_landmarks: int = 3000,
    seed: int = 0,
    place_iters: int = 30,
    chunk: int = 8192,
    n_pairs: int = 100_000,
    progress: ProgressFn | None = None,
) -> LandmarkEmbedding:
    """Embed n graphs from their WL features with memory O(n * landmarks / chunks), never n x n."""
    n = features.shape[0]
    rng = np.random.default_rng(seed)
    landmarks = np.sort(rng.choice(n, size=min(n_landmarks, n), replace=False))
    lf = features[landmarks]
    ln = self_similarity(lf)
    d_land = np.clip(1.0 - normalized_kernel_block(lf, lf, ln, ln), 0.0, None)
    np.fill_diagonal(d_land, 0.0)
    land_x = mds(d_land, m, seed=seed)
    # Landmark-MDS triangulation uses the centred landmark configuration.
    centre = land_x.mean(axis=0)
    land_x -= centre
    land_pinv = np.linalg.pinv(land_x).T
    land_sq_mean = (d_land**2).mean(axis=0)
    coords = np.empty((n, m))
    n_chunks = -(-n // chunk)
    for i, (rows, k_rows) in enumerate(iter_kernel_rows(features, lf, chunk=chunk)):
        coords[rows] = _place(k_rows, land_x, land_pinv, land_sq_mean, place_iters)
        if progress:
            progress(i + 1, n_chunks)
    coords[landmarks] = land_x
    # Quality on random pairs, against the exact kernel.
    i, j = rng.integers(0, n, size=(2, n_pairs))
    norms = self_similarity(features)
    k_ij = np.asarray(features[i].multiply(features[j]).sum(axis=1)).ravel() / np.sqrt(norms[i] * norms[j])
    d_true = np.clip(1.0 - k_ij, 0.0, None)
    d_hat = np.linalg.norm(coords[i] - coords[j], axis=1)
    rel = float(np.linalg.norm(d_true - d_hat) / np.linalg.norm(d_true))
    return LandmarkEmbedding(coords, landmarks, rel)
