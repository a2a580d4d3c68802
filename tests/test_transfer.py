"""Weight transfer on real models agrees with the overlap computed from the two cards alone."""

from __future__ import annotations

import copy
import random

import pytest
import torch

from flexibert._common import FlexiBertError
from flexibert.model.configuration_flexibert import FlexiBertConfig
from flexibert.model.cost import ArchDims
from flexibert.model.modeling_flexibert import (
    FlexiBertForMaskedLM,
    FlexiBertForSequenceClassification,
    FlexiBertModel,
    parameter_block,
)
from flexibert.model.overlap import overlap, transfer_plan
from flexibert.model.transfer import transfer_weights
from flexibert.space.design_space import ModelCard
from flexibert.space.seeds import SEED_CARDS

V = 1000
DIMS = ArchDims(vocab_size=V)


@pytest.fixture(scope="module")
def pool(small_space):
    """Cards of the small space in groups that share heads and widths (so prefixes match), one model each."""
    torch.set_num_threads(1)
    rng = random.Random(0)
    groups: dict[tuple, list] = {}
    for card in small_space:
        groups.setdefault((card.a, card.h), []).append(card)
    cards = []
    for key in rng.sample(sorted(groups), 8):
        cards += rng.sample(groups[key], min(3, len(groups[key])))
    torch.manual_seed(0)
    return {
        card: FlexiBertModel(FlexiBertConfig.from_card(card, vocab_size=V), add_pooling_layer=False)
        for card in cards
    }


def test_real_transfer_equals_overlap_from_cards_on_random_pairs(pool):
    rng = random.Random(1)
    cards = list(pool)
    pairs = rng.sample([(q, s) for q in cards for s in cards if q != s], 60)
    partial, embeddings_only, kinds = 0, 0, set()
    for q_card, s_card in pairs:
        query, source = copy.deepcopy(pool[q_card]), pool[s_card]
        before = {n: p.detach().clone() for n, p in query.named_parameters()}
        report = transfer_weights(query, source)
        plan = transfer_plan(q_card, s_card, DIMS)
        assert report.blocks == plan.blocks and report.embeddings == plan.embeddings
        assert (report.transferred, report.total) == (plan.transferred, plan.total)
        assert report.fraction == overlap(q_card, s_card, DIMS)  # exactly: same integers, same division
        src = dict(source.named_parameters())
        for name, p in query.named_parameters():
            expected = src[name] if parameter_block(name) in plan.blocks else before[name]
            assert torch.equal(p, expected), (q_card, s_card, name)
        partial += 0 < report.fraction < 1
        embeddings_only += plan.embeddings and report.fraction == 0
        kinds |= {block.rsplit(".", 1)[-1] for block in plan.blocks}
    assert partial >= 10  # the pairs exercise partial transfers, not only all-or-nothing
    assert embeddings_only >= 1  # and embeddings moved with no encoder layer
    assert kinds == {"embeddings", "attention", "wma", "ffn", "projection"}


def test_identical_source_gives_exactly_one(pool):
    for card in list(pool)[:6]:
        twin = FlexiBertModel(FlexiBertConfig.from_card(card, vocab_size=V), add_pooling_layer=False)
        report = transfer_weights(twin, pool[card])
        assert report.fraction == 1.0 and report.transferred == report.total
        for (n, a), (_, b) in zip(twin.named_parameters(), pool[card].named_parameters()):
            assert torch.equal(a, b), n


def test_query_sharing_only_the_first_width_gets_its_embeddings_but_no_overlap():
    """The 2021 count put BERT-Tiny at 0.904 overlap here (its word embeddings), above the 0.9 threshold."""
    tiny = SEED_CARDS["bert-tiny"]
    source_card = ModelCard(l=2, a=(4, 4), h=(128, 256), f=(1024, 1024), s=("sdp", "sdp"))
    torch.manual_seed(2)
    query = FlexiBertModel(FlexiBertConfig.from_card(tiny), add_pooling_layer=False)  # the real 30522 vocabulary
    source = FlexiBertModel(FlexiBertConfig.from_card(source_card), add_pooling_layer=False)
    before = {n: p.detach().clone() for n, p in query.named_parameters()}
    report = transfer_weights(query, source)
    plan = transfer_plan(tiny, source_card, query.config.arch_dims)
    assert report.fraction == plan.fraction == 0.0 and report.embeddings and report.blocks == ("embeddings",)
    embedding_params = sum(p.numel() for n, p in query.named_parameters() if parameter_block(n) == "embeddings")
    assert plan.embedding_params == embedding_params and plan.embedding_share > 0.9
    src = dict(source.named_parameters())
    for name, p in query.named_parameters():
        expected = src[name] if parameter_block(name) == "embeddings" else before[name]
        assert torch.equal(p, expected), name


def test_transfer_between_models_with_heads_leaves_heads_alone():
    card = ModelCard(l=2, a=(2, 4), h=(128, 256), f=(512, 2048), s=("sdp", "wma"))  # MLM head has a projection
    torch.manual_seed(1)
    source = FlexiBertForMaskedLM(FlexiBertConfig.from_card(card, vocab_size=V))
    query = FlexiBertForSequenceClassification(FlexiBertConfig.from_card(card, vocab_size=V))
    head = {n: p.detach().clone() for n, p in query.named_parameters() if parameter_block(n) is None}
    report = transfer_weights(query, source)
    assert report.fraction == 1.0
    embeddings = query.flexibert.embeddings.word_embeddings.weight
    assert torch.equal(embeddings, source.flexibert.embeddings.word_embeddings.weight)
    for n, p in query.named_parameters():
        if n in head:
            assert torch.equal(p, head[n]), n


def test_transfer_rejects_models_that_differ_outside_the_card(pool):
    card = next(iter(pool))
    other = FlexiBertModel(FlexiBertConfig.from_card(card, vocab_size=V + 1))
    with pytest.raises(FlexiBertError, match="differ outside their cards"):
        transfer_weights(other, pool[card])
    with pytest.raises(FlexiBertError, match="not a FlexiBERT model"):
        transfer_weights(torch.nn.Linear(2, 2), pool[card])
