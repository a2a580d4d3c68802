"""FFN neuron importance on real models, and a child that inherits a source's best neurons, alone and in a trial."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from flexibert._common import FlexiBertError
from flexibert.model.checkpoint import load_checkpoint, save_checkpoint
from flexibert.model.configuration_flexibert import FlexiBertConfig
from flexibert.model.importance import (
    ffn_importance,
    inheritance_scores,
    magnitude_importance,
    probe_loss,
    top_neurons,
)
from flexibert.model.modeling_flexibert import (
    FlexiBertForSequenceClassification,
    FlexiBertModel,
)
from flexibert.model.overlap import overlap
from flexibert.model.transfer import transfer_weights
from flexibert.space.design_space import ModelCard
from flexibert.train.batching import batches
from flexibert.train.encoding_cache import encoded_split
from flexibert.train.profiles import get_profile
from flexibert.train.trial import (
    IMPORTANCE_BATCHES,
    TrialSpec,
    _transfer_from,
    build_classifier,
    train_trial,
)

from .conftest import GLUE_DIR, VOCAB

V = 1000
SOURCE = ModelCard.homogeneous(l=2, a=2, h=32, f=64)


def classifier(card: ModelCard, seed: int = 0) -> FlexiBertForSequenceClassification:
    torch.manual_seed(seed)
    return FlexiBertForSequenceClassification(FlexiBertConfig.from_card(card, vocab_size=V, num_labels=2)).eval()


def random_batches(n: int, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    """Batches of four padded sequences of different lengths, with labels."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        lengths = torch.tensor([9, 5, 7, 3])
        mask = (torch.arange(9)[None, :] < lengths[:, None]).long()
        ids = torch.randint(5, V, (4, 9), generator=g) * mask
        out.append({"input_ids": ids, "attention_mask": mask, "labels": torch.randint(0, 2, (4,), generator=g)})
    return out


def model_loss(m, batch):
    return m(**batch).loss


def test_magnitude_ranks_a_silenced_neuron_last_and_a_grown_one_first():
    model = classifier(SOURCE)
    layer = model.flexibert.encoder.layer[1]
    with torch.no_grad():
        layer.intermediate.dense.weight[7] = 0
        layer.output.dense.weight[:, 7] = 0
        layer.intermediate.dense.weight[30] *= 10
    scores = magnitude_importance(model)
    assert set(scores) == {0, 1} and scores[1].shape == (64,)
    assert int(scores[1].argmin()) == 7 and int(scores[1].argmax()) == 30
    w_in, w_out = layer.intermediate.dense.weight[3].detach(), layer.output.dense.weight[:, 3].detach()
    assert scores[1][3] == pytest.approx(float(torch.cat([w_in, w_out]).norm()), rel=1e-6)


def test_taylor_is_the_per_example_gradient_of_a_neuron_gate():
    """Oracle: a gate multiplying one layer's activations, each example alone and unpadded; the batch loss is
    the mean over its four examples, so each per-example term carries 1/4."""
    model = classifier(SOURCE)
    data = random_batches(2)
    scores = ffn_importance(model, data, model_loss)
    layer = model.flexibert.encoder.layer[1]
    gate = torch.ones(64, requires_grad=True)
    handle = layer.intermediate.register_forward_hook(lambda _m, _i, out: out * gate)
    want = torch.zeros(64)
    try:
        for batch in data:
            for i in range(4):
                n = int(batch["attention_mask"][i].sum())
                one = {"input_ids": batch["input_ids"][i : i + 1, :n], "labels": batch["labels"][i : i + 1]}
                (grad,) = torch.autograd.grad(model(**one).loss, gate)
                want += grad.abs() / 4
    finally:
        handle.remove()
    assert torch.allclose(scores[1], want, rtol=1e-4, atol=1e-8)
    assert all(p.grad is None for p in model.parameters())  # scoring leaves the model's gradients alone


def test_taylor_ranks_a_neuron_that_cannot_reach_the_loss_last():
    model = classifier(SOURCE)
    with torch.no_grad():
        model.flexibert.encoder.layer[0].output.dense.weight[:, 11] = 0  # its activation goes nowhere
        layer = model.flexibert.encoder.layer[1]
        layer.intermediate.dense.weight[40] = 0  # gelu(0) = 0: it never fires
        layer.intermediate.dense.bias[40] = 0
    scores = ffn_importance(model, random_batches(2), model_loss)
    assert scores[0][11] == 0 and scores[1][40] == 0
    assert (scores[0] > 0).sum() == 63 and (scores[1] > 0).sum() == 63
    assert int(top_neurons(-scores[0], 1)) == 11


def test_top_neurons_keep_the_source_order_and_break_ties_by_index():
    assert top_neurons(torch.tensor([3.0, 1.0, 3.0, 9.0, 0.0]), 3).tolist() == [0, 2, 3]
    assert top_neurons(torch.ones(4), 2).tolist() == [0, 1]
    with pytest.raises(FlexiBertError, match="cannot keep 5 of 4"):
        top_neurons(torch.ones(4), 5)


@pytest.mark.parametrize("layer_map", ["bottom", "uniform"])
def test_pruned_child_computes_what_the_source_does_without_its_dropped_neurons(layer_map):
    source = classifier(SOURCE, seed=1)
    child_card = ModelCard.homogeneous(l=2, a=2, h=32, f=16)
    child = classifier(child_card, seed=2)
    scores = ffn_importance(source, random_batches(2), model_loss)
    report = transfer_weights(child, source, layer_map, scores)
    assert report.fraction == overlap(child_card, SOURCE, layer_map=layer_map) == 1.0
    with torch.no_grad():
        for j, layer in enumerate(source.flexibert.encoder.layer):
            dropped = torch.ones(64, dtype=torch.bool)
            dropped[top_neurons(scores[j], 16)] = False
            layer.intermediate.dense.weight[dropped] = 0
            layer.intermediate.dense.bias[dropped] = 0
        batch = random_batches(1, seed=5)[0]
        batch.pop("labels")
        got, want = child.flexibert(**batch).last_hidden_state, source.flexibert(**batch).last_hidden_state
    assert torch.allclose(got, want, atol=1e-5)
    assert not torch.allclose(got, classifier(child_card, seed=2).flexibert(**batch).last_hidden_state, atol=1e-2)


def test_a_source_without_a_head_is_scored_through_a_fitted_probe():
    torch.manual_seed(0)
    base = FlexiBertModel(FlexiBertConfig.from_card(SOURCE, vocab_size=V)).eval()
    data = random_batches(4)
    loss = probe_loss(base, data, 2)
    with torch.no_grad():
        fitted = float(sum(loss(base, b) for b in data) / len(data))
    assert fitted < 0.6  # 16 examples, 32 features: the probe separates them (chance is ln 2 = 0.69)
    scores = inheritance_scores(base, "importance", data, 2)
    assert set(scores) == {0, 1} and all(bool((s > 0).all()) for s in scores.values())
    assert inheritance_scores(base, "first", data, 2) is None
    assert all(torch.equal(a, b) for a, b in zip(inheritance_scores(base, "magnitude", data, 2).values(),
                                                 magnitude_importance(base).values()))
    with pytest.raises(FlexiBertError, match="ffn_select must be one of"):
        inheritance_scores(base, "largest", data, 2)


def result_card(result) -> ModelCard:
    return ModelCard.from_dict(result.card)


@pytest.fixture(scope="module")
def trained_source(tmp_path_factory):
    """A fine-tuned SST-2 classifier with the real vocabulary and FFN 128, saved as a trial saves it."""
    cache = tmp_path_factory.mktemp("cache")
    card = ModelCard.homogeneous(l=2, a=2, h=64, f=128)
    prof = get_profile("quick", max_train_samples=300, log_every=5)
    spec = TrialSpec(card, "sst2", prof, data=GLUE_DIR, tokenizer=VOCAB, num_threads=1, cache_dir=cache)
    return train_trial(spec, tmp_path_factory.mktemp("source")), cache


def test_a_trial_inherits_the_neurons_its_source_classifier_ranks_highest(tmp_path, trained_source):
    """``_transfer_from`` scores on the trial's own seeded batches, through the source's trained classifier."""
    result, cache = trained_source
    child = ModelCard(l=1, a=(2,), h=(64,), f=(32,), s=("sdp",))
    prof = get_profile("quick", max_train_samples=300)
    spec = TrialSpec(child, "sst2", prof, init=result.checkpoint, data=GLUE_DIR, num_threads=1, cache_dir=cache,
                     layer_map="uniform", ffn_select="importance", seed=3)
    source, tok = load_checkpoint(result.checkpoint)
    train = encoded_split(spec.data, spec.task, "train", tok, prof.max_seq_len, cache, prof.max_train_samples)
    model = build_classifier(child, tok, 2, spec.seed)
    assert _transfer_from(model, spec, train, tok.pad_token_id, "cpu") == overlap(child, result_card(result),
                                                                                  layer_map="uniform")
    scored = [b for _, b in itertools.islice(batches(train, prof.batch_size, tok.pad_token_id,
                                                     np.random.default_rng(3)), IMPORTANCE_BATCHES)]
    kept = top_neurons(ffn_importance(source, scored, model_loss)[1], 32)  # uniform: 1 of 2 layers reads layer 1
    src_layer, q_layer = source.flexibert.encoder.layer[1], model.flexibert.encoder.layer[0]
    assert torch.equal(q_layer.intermediate.dense.weight, src_layer.intermediate.dense.weight[kept])
    assert torch.equal(q_layer.output.dense.weight, src_layer.output.dense.weight[:, kept])
    first = build_classifier(child, tok, 2, spec.seed)
    _transfer_from(first, TrialSpec(child, "sst2", prof, init=result.checkpoint, data=GLUE_DIR, layer_map="uniform",
                                    ffn_select="first"), train, tok.pad_token_id, "cpu")
    assert kept.tolist() != list(range(32))
    assert torch.equal(first.flexibert.encoder.layer[0].intermediate.dense.bias,
                       src_layer.intermediate.dense.bias[:32])


@pytest.mark.parametrize("ffn_select", ["importance", "magnitude"])
def test_trials_record_the_overlap_of_a_pruned_ffn(tmp_path, trained_source, ffn_select):
    result, cache = trained_source
    child = ModelCard(l=1, a=(2,), h=(64,), f=(64,), s=("sdp",))
    prof = get_profile("quick", max_train_samples=200, log_every=5)
    spec = TrialSpec(child, "sst2", prof, init=result.checkpoint, data=GLUE_DIR, num_threads=1, cache_dir=cache,
                     ffn_select=ffn_select)
    r = train_trial(spec, tmp_path / "t")
    assert r.overlap == overlap(child, result_card(result)) == 1.0  # the FFN counts, though narrower


def test_trial_spec_checks_the_inheritance_fields():
    card = ModelCard.homogeneous(l=1, a=2, h=64, f=64)
    spec = TrialSpec(card, "sst2", "quick")
    assert (spec.layer_map, spec.ffn_select) == ("bottom", "importance")
    with pytest.raises(FlexiBertError, match="layer_map must be one of"):
        TrialSpec(card, "sst2", "quick", layer_map="top")
    with pytest.raises(FlexiBertError, match="ffn_select must be one of"):
        TrialSpec(card, "sst2", "quick", ffn_select="random")


def test_a_saved_base_seed_is_scored_through_a_probe_in_a_trial(tmp_path, trained_source):
    """An encoder saved without a head (as ``import-bert`` saves MiniLM) still gives a pruned child its best neurons."""
    result, cache = trained_source
    model, tok = load_checkpoint(result.checkpoint, head="base")
    seed = save_checkpoint(model, tmp_path / "seed", tok)
    child = ModelCard(l=1, a=(2,), h=(64,), f=(32,), s=("sdp",))
    prof = get_profile("quick", max_train_samples=200, log_every=5)
    spec = TrialSpec(child, "sst2", prof, init=seed, data=GLUE_DIR, num_threads=1, cache_dir=cache,
                     layer_map="uniform", ffn_select="importance")
    r = train_trial(spec, tmp_path / "t")
    assert r.overlap == overlap(child, result_card(result), layer_map="uniform") == 1.0
