"""The card-level overlap: the paper's encoder-only fraction, and its array form equal to the scalar rule."""

from __future__ import annotations

import random

import numpy as np
import pytest

from flexibert._common import FlexiBertError
from flexibert.model.cost import ArchDims, param_blocks
from flexibert.model.overlap import (
    LAYER_MAPS,
    CardLayers,
    layer_pairs,
    matching_prefix,
    overlap,
    transfer_plan,
    uniform_source_layer,
)
from flexibert.space.design_space import DesignSpace, ModelCard
from flexibert.space.seeds import SEED_CARDS

from .conftest import SMALL_SPACE

HEADS, WIDTHS, FFNS = (1, 2, 4, 8), (64, 128, 256, 512), (256, 512, 1024, 3072)


def random_card(rng: random.Random, l: int) -> ModelCard:  # noqa: E741
    h = [rng.choice(WIDTHS) for _ in range(l)]
    a = [rng.choice([x for x in HEADS if w % x == 0]) for w in h]
    return ModelCard(l=l, a=a, h=h, f=[rng.choice(FFNS) for _ in range(l)],
                     s=[rng.choice(("sdp", "wma")) for _ in range(l)])


def relative(rng: random.Random, card: ModelCard) -> ModelCard:
    """A card that shares a random prefix with ``card`` and may be deeper or shallower."""
    l = rng.randint(1, 6)  # noqa: E741
    other = random_card(rng, l).to_dict()
    keep = rng.randint(0, min(l, card.l))
    for key in ("a", "h", "f", "s"):
        for j in range(keep):
            if rng.random() < 0.85:  # now and then a kept layer differs in one field
                other[key][j] = getattr(card, key)[j]
    if any(w % x for w, x in zip(other["h"], other["a"])):
        other["a"] = [x if w % x == 0 else 1 for w, x in zip(other["h"], other["a"])]
    return ModelCard.from_dict(other)


def family_card(rng: random.Random) -> ModelCard:
    """One width at any depth, as in MiniLM's family: the uniform map finds matches across depths."""
    l = rng.randint(1, 6)  # noqa: E741
    return ModelCard(l=l, a=[rng.choice((2, 4)) for _ in range(l)], h=[128] * l,
                     f=[rng.choice(FFNS) for _ in range(l)], s=[rng.choice(("sdp", "wma")) for _ in range(l)])


@pytest.mark.parametrize("layer_map", LAYER_MAPS)
@pytest.mark.parametrize("dims", [ArchDims(), ArchDims(vocab_size=1000, position_embedding_type="absolute")])
def test_array_overlap_equals_the_scalar_rule_exactly(dims, layer_map):
    rng = random.Random(7)
    cards = [random_card(rng, rng.randint(1, 6)) for _ in range(150)] + list(SEED_CARDS.values())
    cards += [family_card(rng) for _ in range(60)]
    pairs = []
    for _ in range(400):  # related pairs, both ways round: partial prefixes of every length
        i = rng.randrange(len(cards))
        cards.append(relative(rng, cards[i]))
        pairs += [(i, len(cards) - 1), (len(cards) - 1, i)]
    pairs += [(rng.randrange(len(cards)), rng.randrange(len(cards))) for _ in range(3000)]
    pairs += [(i, i) for i in range(len(cards))]
    family = range(len(cards) - 60, len(cards))
    pairs += [(i, j) for i in family for j in family]
    q, s = np.array(pairs).T
    layers = CardLayers(cards, dims)
    want = np.array([overlap(cards[i], cards[j], dims, layer_map) for i, j in pairs])
    assert np.array_equal(layers.overlap(q, s, layer_map), want)  # exactly: the same integers, the same division
    prefixes = {matching_prefix(cards[i], cards[j]) for i, j in pairs}
    depths = {cards[i].l - cards[j].l for i, j in pairs}
    assert prefixes >= set(range(6)) and min(depths) <= -4 and max(depths) >= 4
    assert ((want > 0) & (want < 1)).sum() > 300 and (want == 1).sum() >= len(cards)
    plans = [transfer_plan(cards[i], cards[j], dims, layer_map) for i, j in pairs]
    assert sum(len(p.pruned) for p in plans) > 100  # narrower FFNs count as inherited
    spread = sum(any(j != m for j, m in p.layers) for p in plans)
    gaps = sum(any(b - a > 1 for (a, _), (b, _) in zip(p.layers, p.layers[1:])) for p in plans)
    assert (spread > 100 and gaps > 30) if layer_map == "uniform" else spread == gaps == 0
    # Broadcasting: one query against many sources, and all pairs of two sets, give the pairwise numbers.
    assert np.array_equal(layers.overlap(q[0], s, layer_map),
                          [overlap(cards[q[0]], cards[j], dims, layer_map) for j in s.tolist()])
    a, b = q[:40], s[-30:]
    grid = [[overlap(cards[i], cards[j], dims, layer_map) for j in b.tolist()] for i in a.tolist()]
    assert np.array_equal(layers.overlap(a[:, None], b[None, :], layer_map), grid)
    a, b = np.array(family[:25]), np.array(family[-25:])
    grid = [[overlap(cards[i], cards[j], dims, layer_map) for j in b.tolist()] for i in a.tolist()]
    assert np.array_equal(layers.overlap(a[:, None], b[None, :], layer_map), grid)
    blocks = [param_blocks(c, dims) for c in cards]
    assert layers.total.tolist() == [sum(b.values()) - b["embeddings"] for b in blocks]


def test_array_overlap_on_the_full_small_space_sample():
    space = DesignSpace.from_yaml(SMALL_SPACE, rule="full")
    rng = random.Random(3)
    cards = [c for c in space if rng.random() < 0.01]
    layers = CardLayers(cards)
    q = np.array([rng.randrange(len(cards)) for _ in range(3000)])
    s = np.array([rng.randrange(len(cards)) for _ in range(3000)])
    want = [overlap(cards[i], cards[j]) for i, j in zip(q.tolist(), s.tolist())]
    assert np.array_equal(layers.overlap(q, s), want)


def test_overlap_counts_encoder_layers_only():
    tiny = SEED_CARDS["bert-tiny"]
    first_width_only = ModelCard(l=2, a=(4, 4), h=(128, 256), f=(1024, 1024), s=("sdp", "sdp"))
    plan = transfer_plan(tiny, first_width_only, ArchDims(vocab_size=30522))
    assert plan.embeddings and plan.fraction == 0.0 and plan.transferred == 0
    assert plan.embedding_share > 0.9  # counting embeddings, as before, would have passed a 0.9 threshold
    l4 = SEED_CARDS["bert-l4-h128"]
    half = transfer_plan(l4, tiny)
    assert half.embeddings and half.fraction == 0.5  # two of four identical layers
    assert transfer_plan(tiny, tiny).fraction == 1.0
    # The vocabulary changes the embedding share, never the overlap.
    small_vocab = transfer_plan(l4, tiny, ArchDims(vocab_size=1000))
    assert small_vocab.fraction == half.fraction and small_vocab.embedding_share < half.embedding_share


def test_uniform_map_spreads_a_shallower_query_over_the_source():
    assert [uniform_source_layer(j, 3, 6) for j in range(3)] == [1, 3, 5]
    assert [uniform_source_layer(j, 2, 6) for j in range(2)] == [2, 5]
    assert [uniform_source_layer(j, 4, 6) for j in range(4)] == [1, 2, 4, 5]  # 1.5 and 4.5 round up
    assert [uniform_source_layer(j, 1, 4) for j in range(1)] == [3]
    assert [uniform_source_layer(j, 5, 3) for j in range(5)] == [0, 1, 2, 3, 4]  # deeper: the identity
    assert [uniform_source_layer(j, 6, 6) for j in range(6)] == list(range(6))


def test_layer_pairs_and_pruned_ffns_on_minilm_children():
    """MiniLM's family: width 384, 12 heads, FFN 1536; a child with 6 heads in its middle layer and FFN 768."""
    minilm = ModelCard.homogeneous(l=6, a=12, h=384, f=1536)
    child = ModelCard(l=3, a=(12, 6, 12), h=(384,) * 3, f=(768, 1536, 768), s=("sdp",) * 3)
    assert layer_pairs(child, minilm) == ((0, 0),)  # bottom: the prefix stops at the 6-head layer
    assert layer_pairs(child, minilm, "uniform") == ((0, 1), (2, 5))  # uniform: every match, past the gap
    bottom, uniform = transfer_plan(child, minilm), transfer_plan(child, minilm, layer_map="uniform")
    assert bottom.pruned == (0,) and uniform.pruned == (0, 2)
    blocks = param_blocks(child)
    assert bottom.transferred == blocks["layer.0.attention"] + blocks["layer.0.ffn"]
    assert uniform.transferred == bottom.transferred + blocks["layer.2.attention"] + blocks["layer.2.ffn"]
    wider = ModelCard.homogeneous(l=2, a=12, h=384, f=3072)  # an FFN wider than the source's is not inherited
    assert transfer_plan(wider, minilm).blocks == ("embeddings", "layer.0.attention", "layer.1.attention")
    assert transfer_plan(wider, minilm).pruned == ()


@pytest.mark.parametrize("call", [
    lambda a, b: overlap(a, b, layer_map="top"),
    lambda a, b: transfer_plan(a, b, layer_map="top"),
    lambda a, b: CardLayers([a, b]).overlap(0, 1, "top"),
])
def test_an_unknown_layer_map_is_one_clear_error(call):
    tiny = SEED_CARDS["bert-tiny"]
    with pytest.raises(FlexiBertError, match=r"layer_map must be one of \['bottom', 'uniform'\], got 'top'"):
        call(tiny, tiny)
