"""Weisfeiler-Lehman subtree kernel between block graphs, as sparse label counts.

Semantics are GraKeL's ``WeisfeilerLehman(n_iter, VertexHistogram, normalize=True)``:
``n_iter + 1`` label histograms (the original labels, then ``n_iter`` refinements
over *out*-neighbours), each refinement numbered apart from the others, the
kernel the sum of the histogram dot products, normalised once on the sum.

Instead of GraKeL's per-graph dictionaries, all graphs are refined together as
one disjoint union with numpy: a node's neighbour multiset is summarised by two
independent random 64-bit sums (a false merge needs both to collide, odds about
2^-126 per pair), and ``np.unique`` numbers the new labels. The features are one
sparse matrix, so the whole kernel is one sparse product. Tests check it against
GraKeL to 1e-9.
"""

from __future__ import annotations

from itertools import chain
from typing import Iterator, Sequence

import numpy as np
import scipy.sparse as sp

from flexibert.space.graphs import BlockGraph

DEFAULT_N_ITER = 5


def wl_features(graphs: Sequence[BlockGraph], n_iter: int = DEFAULT_N_ITER, seed: int = 0) -> sp.csr_matrix:
    """One row per graph: counts of every WL label of every iteration (columns never shared across iterations)."""
    if n_iter < 0:
        raise ValueError("n_iter must be >= 0")
    sizes = np.fromiter((len(g.ops) for g in graphs), dtype=np.int64, count=len(graphs))
    n_edges = np.fromiter((len(g.edges) for g in graphs), dtype=np.int64, count=len(graphs))
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    graph_of_node = np.repeat(np.arange(len(graphs)), sizes)
    ops = list(chain.from_iterable(g.ops for g in graphs))
    vocabulary = {op: i for i, op in enumerate(dict.fromkeys(ops))}
    labels = np.fromiter(map(vocabulary.__getitem__, ops), dtype=np.uint64, count=len(ops))
    ends = np.fromiter(chain.from_iterable(chain.from_iterable(g.edges for g in graphs)), dtype=np.int64,
                       count=2 * int(n_edges.sum()))
    shift = np.repeat(offsets[:-1], n_edges)
    src, dst = ends[0::2] + shift, ends[1::2] + shift
    order = np.argsort(src, kind="stable")
    src, dst = src[order], dst[order]
    starts = np.flatnonzero(np.r_[True, src[1:] != src[:-1]])  # first out-edge of each source node
    has_out = src[starts]

    rng = np.random.default_rng(seed)
    cols, col_offset = [], 0
    for it in range(n_iter + 1):
        cols.append(labels.astype(np.int64) + col_offset)
        n_labels = int(labels.max()) + 1
        col_offset += n_labels
        if it == n_iter:
            break
        keys = [labels]
        for _ in range(2):
            salt = rng.integers(0, np.iinfo(np.uint64).max, size=n_labels, dtype=np.uint64, endpoint=True)
            summary = np.zeros(len(labels), dtype=np.uint64)
            summary[has_out] = np.add.reduceat(salt[labels[dst]], starts)
            keys.append(summary)
        labels = _number_distinct(keys)
    rows = np.tile(graph_of_node, n_iter + 1)
    data = np.ones(len(rows), dtype=np.float64)
    feats = sp.csr_matrix((data, (rows, np.concatenate(cols))), shape=(len(graphs), col_offset))
    feats.sum_duplicates()
    return feats


def _number_distinct(keys: list[np.ndarray]) -> np.ndarray:
    """Label each position by the distinct tuple of ``keys`` it holds (0, 1, ... in sorted order)."""
    order = np.lexsort(keys[::-1])
    changed = np.zeros(len(order), dtype=bool)
    for k in keys:
        ks = k[order]
        changed[1:] |= ks[1:] != ks[:-1]
    labels = np.empty(len(order), dtype=np.uint64)
    labels[order] = np.cumsum(changed)
    return labels


def self_similarity(features: sp.csr_matrix) -> np.ndarray:
    """Unnormalised k(x, x) for every row."""
    return np.asarray(features.multiply(features).sum(axis=1)).ravel()


def _count_product(a: sp.csr_matrix, b: sp.csr_matrix, bound: float, weight: np.ndarray | None = None) -> np.ndarray:
    """a diag(weight) b^T of integer label counts, dense.

    float32 BLAS is exact here while every entry <= ``bound`` < 2^24, and twice as fast as float64.
    """
    dtype = np.float32 if bound < 2**24 else np.float64
    left = a.astype(dtype).toarray()
    right = left if b is a else b.astype(dtype).toarray()
    if weight is not None:
        left = left * weight.astype(dtype)
    return (left @ right.T).astype(np.float64)


def _normalize(k: np.ndarray, rows_norm: np.ndarray, cols_norm: np.ndarray) -> np.ndarray:
    k /= np.sqrt(rows_norm)[:, None]
    k /= np.sqrt(cols_norm)[None, :]
    return k


def normalized_kernel_block(
    rows: sp.csr_matrix, cols: sp.csr_matrix, rows_norm: np.ndarray, cols_norm: np.ndarray
) -> np.ndarray:
    """Dense normalised kernel between two sets of feature rows."""
    support = np.unique(cols.indices)  # columns absent from ``cols`` add nothing to the product
    bound = max(rows_norm.max(initial=0), cols_norm.max(initial=0))  # k(x, y) <= max k(x, x)
    k = _count_product(rows[:, support], cols[:, support], bound)
    return _normalize(k, rows_norm, cols_norm)


def _distinct_columns(features: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the distinct columns and how often each occurs.

    Many WL labels always co-occur (a label and its refinement in a graph family),
    so merging equal columns with integer weights halves the kernel product.
    """
    csc = features.tocsc()
    csc.sort_indices()
    seen: dict[tuple[bytes, bytes], int] = {}
    keep, weight = [], []
    for j in range(csc.shape[1]):
        lo, hi = csc.indptr[j], csc.indptr[j + 1]
        key = (csc.indices[lo:hi].tobytes(), csc.data[lo:hi].tobytes())
        if key in seen:
            weight[seen[key]] += 1
        else:
            seen[key] = len(keep)
            keep.append(j)
            weight.append(1)
    return np.asarray(keep), np.asarray(weight, dtype=np.float64)


def wl_kernel(features: sp.csr_matrix) -> np.ndarray:
    """Dense normalised kernel matrix K (n x n); use ``iter_kernel_rows`` when n x n does not fit."""
    norm = self_similarity(features)
    keep, weight = _distinct_columns(features)
    distinct = features[:, keep]
    k = _normalize(_count_product(distinct, distinct, norm.max(initial=0), weight), norm, norm)
    np.fill_diagonal(k, 1.0)
    return k


def iter_kernel_rows(
    features: sp.csr_matrix, cols: sp.csr_matrix, chunk: int = 8192
) -> Iterator[tuple[slice, np.ndarray]]:
    """Normalised kernel rows against ``cols``, ``chunk`` rows at a time, for spaces too big for n x n."""
    cols_norm = self_similarity(cols)
    for start in range(0, features.shape[0], chunk):
        block = features[start : start + chunk]
        yield slice(start, start + block.shape[0]), normalized_kernel_block(
            block, cols, self_similarity(block), cols_norm
        )


def dissimilarity(kernel: np.ndarray) -> np.ndarray:
    """D = 1 - K, clipped at 0 against rounding."""
    return np.clip(1.0 - kernel, 0.0, None)
