"""Weight transfer on real models agrees with the overlap computed from the two cards alone, under both
layer maps and with FFNs narrower than their source's."""

from __future__ import annotations

import copy
import random
import re

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
from flexibert.model.overlap import LAYER_MAPS, overlap, transfer_plan
from flexibert.model.transfer import transfer_weights
from flexibert.space.design_space import ModelCard
from flexibert.space.seeds import SEED_CARDS

V = 1000
DIMS = ArchDims(vocab_size=V)


def family_card(rng: random.Random) -> ModelCard:
    """A MiniLM-like family member: one width, 1-6 layers, each with its own heads and FFN size."""
    l = rng.randint(1, 6)  # noqa: E741
    return ModelCard(l=l, a=[rng.choice((2, 4)) for _ in range(l)], h=[64] * l,
                     f=[rng.choice((64, 128, 256)) for _ in range(l)], s=[rng.choice(("sdp", "wma")) for _ in range(l)])


@pytest.fixture(scope="module")
def pool(small_space):
    """Cards of the small space in groups that share heads and widths (so prefixes match), and cards of one
    width at many depths (so the uniform map spreads layers and FFNs narrow), one model each."""
    torch.set_num_threads(1)
    rng = random.Random(0)
    groups: dict[tuple, list] = {}
    for card in small_space:
        groups.setdefault((card.a, card.h), []).append(card)
    cards = []
    for key in rng.sample(sorted(groups), 8):
        cards += rng.sample(groups[key], min(3, len(groups[key])))
    cards += list(dict.fromkeys(family_card(rng) for _ in range(16)))
    torch.manual_seed(0)
    return {
        card: FlexiBertModel(FlexiBertConfig.from_card(card, vocab_size=V), add_pooling_layer=False)
        for card in cards
    }


def expected_tensor(name: str, plan, src: dict, before: dict) -> torch.Tensor:
    """What ``transfer_weights`` should leave in a query tensor, rebuilt from the plan: the mapped source
    layer's tensor, cut to the first neurons where the query's FFN is narrower; untouched outside the plan."""
    block = parameter_block(name)
    if block not in plan.blocks:
        return before[name]
    if block == "embeddings":
        return src[name]
    j = int(block.split(".")[1])
    value = src[re.sub(r"^encoder\.layer\.\d+\.", f"encoder.layer.{dict(plan.layers)[j]}.", name)]
    f = before[f"encoder.layer.{j}.intermediate.dense.bias"].shape[0]
    if ".intermediate." in name:
        return value[:f]
    return value[:, :f] if name.endswith(".output.dense.weight") else value


@pytest.mark.parametrize("layer_map", LAYER_MAPS)
def test_real_transfer_equals_overlap_from_cards_on_random_pairs(pool, layer_map):
    rng = random.Random(1)
    cards = list(pool)
    pairs = rng.sample([(q, s) for q in cards for s in cards if q != s], 150)
    partial, embeddings_only, kinds, pruned, skipped = 0, 0, set(), 0, 0
    for q_card, s_card in pairs:
        query, source = copy.deepcopy(pool[q_card]), pool[s_card]
        before = {n: p.detach().clone() for n, p in query.named_parameters()}
        report = transfer_weights(query, source, layer_map)
        plan = transfer_plan(q_card, s_card, DIMS, layer_map)
        assert report.blocks == plan.blocks and report.embeddings == plan.embeddings
        assert (report.transferred, report.total) == (plan.transferred, plan.total)
        assert report.fraction == overlap(q_card, s_card, DIMS, layer_map)  # exactly: same integers, same division
        src = dict(source.named_parameters())
        for name, p in query.named_parameters():
            assert torch.equal(p, expected_tensor(name, plan, src, before)), (q_card, s_card, name)
        partial += 0 < report.fraction < 1
        embeddings_only += plan.embeddings and report.fraction == 0
        kinds |= {block.rsplit(".", 1)[-1] for block in plan.blocks}
        pruned += len(plan.pruned)
        skipped += any(j != m for j, m in plan.layers)  # a query layer read a source layer of another index
    assert partial >= 10  # the pairs exercise partial transfers, not only all-or-nothing
    assert embeddings_only >= 1  # and embeddings moved with no encoder layer
    assert kinds == {"embeddings", "attention", "wma", "ffn", "projection"}
    assert pruned >= 10  # narrower FFNs took a subset of their source's neurons
    assert (skipped > 0) == (layer_map == "uniform")


def test_narrower_ffn_takes_the_best_scored_neurons_in_source_order():
    """With scores, the kept neurons are the top ones, sorted; a query layer reads its uniformly mapped layer."""
    source_card = ModelCard.homogeneous(l=4, a=2, h=32, f=8)
    query_card = ModelCard.homogeneous(l=2, a=2, h=32, f=3)
    torch.manual_seed(3)
    source = FlexiBertModel(FlexiBertConfig.from_card(source_card, vocab_size=V))
    query = FlexiBertModel(FlexiBertConfig.from_card(query_card, vocab_size=V))
    scores = {m: torch.tensor([0.0, 5.0, 1.0, 7.0, 2.0, 6.0, 3.0, 4.0]) for m in range(4)}
    report = transfer_weights(query, source, "uniform", scores)
    assert report.fraction == 1.0
    kept = torch.tensor([1, 3, 5])  # the three highest scores, in the source's order
    for j, m in ((0, 1), (1, 3)):  # 2 of 4 layers: the second and the fourth
        q, s = query.encoder.layer[j], source.encoder.layer[m]
        assert torch.equal(q.intermediate.dense.weight, s.intermediate.dense.weight[kept])
        assert torch.equal(q.intermediate.dense.bias, s.intermediate.dense.bias[kept])
        assert torch.equal(q.output.dense.weight, s.output.dense.weight[:, kept])
        assert torch.equal(q.output.dense.bias, s.output.dense.bias)
        assert torch.equal(q.output.LayerNorm.weight, s.output.LayerNorm.weight)
        assert torch.equal(q.attention.self.query.weight, s.attention.self.query.weight)
    with pytest.raises(FlexiBertError, match="neuron scores for source layer 3"):
        transfer_weights(query, source, "uniform", {1: scores[1]})
    with pytest.raises(FlexiBertError, match="layer_map must be one of"):
        transfer_weights(query, source, "top")


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
