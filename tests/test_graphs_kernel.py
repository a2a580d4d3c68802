"""Graphs, fingerprints and the WL kernel against the study's hashes, GraKeL and the README's reference values."""

from __future__ import annotations

import random

import numpy as np
import pytest

from flexibert.space.design_space import ModelCard
from flexibert.space.graphs import (
    BlockGraph,
    card_to_graph,
    find_duplicates,
    fingerprint,
    isomorphic,
)
from flexibert.space.kernel import iter_kernel_rows, wl_features, wl_kernel

TINY = ModelCard.homogeneous(2, 2, 128, 512)
MINI = ModelCard.homogeneous(4, 4, 256, 1024)
L2_H256 = ModelCard.homogeneous(2, 4, 256, 1024)
L4_H128 = ModelCard.homogeneous(4, 2, 128, 512)


def test_graph_follows_the_study_convention():
    g = card_to_graph(ModelCard.from_dict({"l": 2, "a": [2, 4], "h": [128, 256], "f": [512, 1024],
                                           "s": ["sdp", "wma"]}))
    assert g.ops == ("input", "a_h128_s-sdp", "a_h128_s-sdp", "add_norm", "f512", "add_norm",
                     "a_h256_s-wma", "a_h256_s-wma", "a_h256_s-wma", "a_h256_s-wma", "add_norm", "f1024",
                     "add_norm", "output")
    ins, outs = g.neighbours()
    assert outs[0] == [1, 2] and ins[3] == [1, 2] and outs[5] == [6, 7, 8, 9] and outs[12] == [13]


def test_all_2037_hashes_equal_the_study(small_space, study):
    ours = [fingerprint(c) for c in small_space]
    assert ours[0] == "35e82e537b2d32fbaf46b662e1458956"
    assert ours == study["hashes"]


def test_isomorphism_check_really_runs(small_space):
    a = card_to_graph(MINI)
    # Same graph with nodes relabelled in a different order: isomorphic, same hash.
    perm = list(range(len(a.ops)))
    random.Random(0).shuffle(perm)
    inv = {old: new for new, old in enumerate(perm)}
    shuffled = BlockGraph(tuple(a.ops[old] for old in perm), tuple((inv[x], inv[y]) for x, y in a.edges))
    assert isomorphic(a, shuffled) and fingerprint(a) == fingerprint(shuffled)
    # Same node multiset, different wiring: not isomorphic, different hash.
    rewired = BlockGraph(a.ops, a.edges[:-1] + ((a.edges[-1][0] - 1, a.edges[-1][1]),))
    assert not isomorphic(a, rewired)
    cards = list(small_space)
    report = find_duplicates(cards + [cards[5], cards[7]])
    assert report.n_duplicates == 2 and report.hash_collisions == ()
    assert sorted(g for grp in report.duplicate_groups for g in grp) == [5, 7, 2037, 2038]
    assert find_duplicates(cards).n_duplicates == 0


def _grakel_kernel(graphs):
    grakel = pytest.importorskip("grakel")
    out = []
    for g in graphs:  # GraKeL consumes its Graph objects: build fresh ones for every call
        adj = np.zeros((len(g.ops), len(g.ops)), dtype=int)
        for x, y in g.edges:
            adj[x, y] = 1
        out.append(grakel.Graph(adj, node_labels=dict(enumerate(g.ops))))
    wl = grakel.WeisfeilerLehman(n_iter=5, base_graph_kernel=grakel.VertexHistogram, normalize=True)
    return wl.fit_transform(out)


def test_kernel_equals_grakel_on_all_2037(small_space):
    graphs = [card_to_graph(c) for c in small_space]
    ours = wl_kernel(wl_features(graphs))
    reference = _grakel_kernel(graphs)
    assert ours.shape == (2037, 2037)
    assert np.abs(ours - reference).max() < 1e-9


@pytest.mark.parametrize(
    "a, b, expected", [(TINY, MINI, 0.090419), (MINI, L2_H256, 0.967117), (TINY, L4_H128, 0.952703)]
)
def test_kernel_reference_values(a, b, expected):
    k = wl_kernel(wl_features([card_to_graph(a), card_to_graph(b)]))
    assert k[0, 1] == pytest.approx(expected, abs=5e-7)


def test_chunked_rows_equal_the_dense_kernel(small_space):
    feats = wl_features([card_to_graph(c) for c in small_space])
    dense = wl_kernel(feats)
    cols = feats[::7]
    rows = np.vstack([blk for _, blk in iter_kernel_rows(feats, cols, chunk=500)])
    assert np.abs(rows - dense[:, ::7]).max() < 1e-12
