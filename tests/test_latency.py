"""Latency model and budget: real torch timings of small cards (no timed assertions), real cards
of the study's space for the budget, and the saved model's JSON."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from flexibert._common import FlexiBertError
from flexibert.model.cost import ArchDims, flops, param_count
from flexibert.model.latency import (
    LatencyModel,
    LatencySetup,
    calibrate,
    measure_latency,
    sample_cards,
)
from flexibert.search.budget import Budget
from flexibert.space.design_space import DesignSpace, ModelCard

# Small models, short sequences, one thread: the timings take seconds, not minutes.
SETUP = LatencySetup(batch=2, seq_len=64, threads=1, dims=ArchDims(vocab_size=1000), warmup=1, repeats=3)
FAMILY = DesignSpace(
    layers=(1, 2, 3, 4), heads=(2,), hidden=(64, 128), feed_forward=(128, 512), similarity=("sdp",), name="tiny"
)


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def fitted() -> LatencyModel:
    return calibrate(list(FAMILY), sample_size=8, setup=SETUP, seed=0)


def test_predictions_are_positive_and_grow_with_depth(fitted):
    cards = [ModelCard.homogeneous(depth, 2, 128, 512) for depth in range(1, 7)]
    assert np.all(np.diff([flops(c, SETUP.seq_len, SETUP.dims) for c in cards]) > 0)
    predicted = fitted.predict(cards)
    assert predicted.shape == (6,)
    assert np.all(predicted > 0)
    assert np.all(np.diff(predicted) > 0)


def test_weights_stay_non_negative_on_contradictory_timings(fitted):
    """Noise can make a bigger card time faster; the model must still never predict less for more."""
    cards = [card for card, _ in fitted.samples_]  # the sample comes in FLOPs order
    reversed_ms = [ms for _, ms in fitted.samples_][::-1]
    model = LatencyModel(SETUP).fit(cards, reversed_ms)
    assert np.all(model.coef_ >= 0)
    predicted = model.predict([ModelCard.homogeneous(depth, 2, 128, 512) for depth in range(1, 7)])
    assert np.all(predicted > 0) and np.all(np.diff(predicted) >= 0)


def test_held_out_error_is_reported_over_the_measured_sample(fitted):
    err = fitted.held_out_error_
    assert err.n == len(fitted.samples_) == 8
    assert math.isfinite(err.median) and math.isfinite(err.max)
    assert 0 <= err.median <= err.max
    assert all(ms > 0 for _, ms in fitted.samples_)


def test_predict_covers_a_whole_space(fitted, small_space):
    cards = list(small_space)
    predicted = fitted.predict(cards)
    assert predicted.shape == (len(cards),) == (2037,)
    assert np.all(np.isfinite(predicted) & (predicted > 0))


def test_sample_spans_the_flops_range_and_is_deterministic(small_space):
    cards = list(small_space)
    setup = LatencySetup(batch=32)
    sample = sample_cards(cards, 12, setup, seed=3)
    cost = [flops(c) for c in cards]
    sampled_cost = [flops(c) for c in sample]
    assert len(set(sample)) == 12
    assert min(sampled_cost) == min(cost) and max(sampled_cost) == max(cost)
    assert sampled_cost == sorted(sampled_cost)
    assert sample_cards(cards, 12, setup, seed=3) == sample
    assert sample_cards(cards, 12, setup, seed=4) != sample
    with pytest.raises(FlexiBertError, match="exceeds"):
        sample_cards(cards[:3], 4, setup, seed=0)


def test_measure_latency_restores_the_thread_count():
    ms = measure_latency(ModelCard.homogeneous(1, 2, 64, 128), replace(SETUP, threads=2))
    assert math.isfinite(ms) and ms > 0
    assert torch.get_num_threads() == 1


def test_budget_rejects_cards_over_max_params_by_param_count(small_space):
    cards = list(small_space)
    counts = [param_count(c) for c in cards]
    limit = int(np.median(counts))
    budget = Budget(max_params=limit)
    kept = [c for c in cards if not budget.breaks(c)]
    assert 0 < len(kept) < len(cards)
    assert len(kept) == sum(n <= limit for n in counts)
    edge = cards[counts.index(max(n for n in counts if n <= limit))]
    assert Budget(max_params=param_count(edge)).breaks(edge) == ()
    assert Budget(max_params=param_count(edge) - 1).breaks(edge) == ("max_params",)


def test_budget_names_every_limit_a_card_breaks():
    card = ModelCard.homogeneous(4, 4, 256, 1024)
    tight = Budget(max_params=param_count(card) - 1, max_flops=flops(card) - 1, max_latency_ms=10.0)
    assert tight.breaks(card, latency_ms=10.5) == ("max_params", "max_flops", "max_latency_ms")
    assert Budget(max_flops=flops(card), max_latency_ms=10.0).breaks(card, latency_ms=10.0) == ()
    with pytest.raises(FlexiBertError, match="latency is needed"):
        tight.breaks(card)


def test_a_latency_ratio_becomes_milliseconds_of_the_seeds_latency():
    """Half the seed's latency: unresolved it checks nothing (only a run can measure the seed); resolved, the
    tighter of the ratio and a limit in milliseconds."""
    card = ModelCard.homogeneous(2, 2, 128, 512)
    half = Budget(max_flops=flops(card), max_latency_ratio=0.5)
    assert half and Budget(max_latency_ratio=0.5)
    with pytest.raises(FlexiBertError, match="max_latency_ratio"):
        half.breaks(card, latency_ms=1.0)
    resolved = half.resolved(8.0)
    assert resolved == Budget(max_flops=flops(card), max_latency_ms=4.0)
    assert resolved.breaks(card, latency_ms=4.0) == () and resolved.breaks(card, latency_ms=4.1) == ("max_latency_ms",)
    assert Budget(max_latency_ms=3.0, max_latency_ratio=0.5).resolved(8.0).max_latency_ms == 3.0
    assert Budget(max_latency_ms=5.0, max_latency_ratio=0.5).resolved(8.0).max_latency_ms == 4.0
    assert Budget(max_flops=10).resolved(8.0) == Budget(max_flops=10)
    assert Budget.of(resolved.to_dict()) == resolved


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_latency_ratio": 0},
        {"max_latency_ratio": -0.5},
        {"max_latency_ratio": "half"},
        {"max_params": 0},
        {"max_params": -5},
        {"max_params": 1.5},
        {"max_params": True},
        {"max_flops": "10"},
        {"max_latency_ms": 0},
        {"max_latency_ms": -1.0},
        {"max_latency_ms": float("nan")},
        {"max_latency_ms": float("inf")},
    ],
)
def test_bad_budget_values_raise_one_line(kwargs):
    with pytest.raises(FlexiBertError) as e:
        Budget(**kwargs)
    assert "\n" not in str(e.value) and next(iter(kwargs)) in str(e.value)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch": 0},
        {"threads": -1},
        {"repeats": 0},
        {"warmup": -1},
        {"seq_len": 1024, "dims": ArchDims(position_embedding_type="absolute")},
        {"dims": ArchDims(position_embedding_type="rotary")},
    ],
)
def test_bad_latency_setup_raises(kwargs):
    with pytest.raises(FlexiBertError, match="latency setup"):
        LatencySetup(**kwargs)


def test_fit_refuses_unusable_measurements():
    cards = [ModelCard.homogeneous(depth, 2, 64, 128) for depth in range(1, 7)]
    with pytest.raises(FlexiBertError, match="at least"):
        LatencyModel(SETUP).fit(cards[:5], [1.0] * 5)
    with pytest.raises(FlexiBertError, match="measurements"):
        LatencyModel(SETUP).fit(cards, [1.0] * 5)
    with pytest.raises(FlexiBertError, match="positive"):
        LatencyModel(SETUP).fit(cards, [1.0, 2.0, 0.0, 3.0, 4.0, 5.0])
    with pytest.raises(FlexiBertError, match="fit or load"):
        LatencyModel(SETUP).predict(cards)


def test_json_round_trip(fitted, tmp_path, small_space):
    path = fitted.save(tmp_path / "latency.json")
    loaded = LatencyModel.load(path)
    cards = list(small_space)[:50]
    assert np.array_equal(loaded.predict(cards), fitted.predict(cards))
    assert loaded.setup == fitted.setup
    assert loaded.held_out_error_ == fitted.held_out_error_
    assert loaded.samples_ == fitted.samples_
    assert loaded.machine_ == fitted.machine_


def test_load_rejects_what_is_not_a_latency_model(fitted, tmp_path):
    with pytest.raises(FlexiBertError, match="not found"):
        LatencyModel.load(tmp_path / "missing.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(FlexiBertError, match="not a FlexiBERT latency model"):
        LatencyModel.load(tmp_path / "other.json")
    d = fitted.to_dict()
    del d["setup"]
    (tmp_path / "broken.json").write_text(json.dumps(d))
    with pytest.raises(FlexiBertError, match="malformed"):
        LatencyModel.load(tmp_path / "broken.json")


def test_the_torch_free_position_schemes_match_the_models_own():
    from flexibert.model.configuration_flexibert import POSITION_EMBEDDING_TYPES
    from flexibert.model.cost import POSITION_SCHEMES

    assert POSITION_SCHEMES == POSITION_EMBEDDING_TYPES
