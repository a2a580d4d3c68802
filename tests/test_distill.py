"""Distillation from a real fine-tuned teacher on real SST-2 sentences: the cached teacher logits, the
loss that reduces to plain fine-tuning at alpha 0, and one teacher pass shared by later trials."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from flexibert._common import FlexiBertError
from flexibert.model.checkpoint import load_checkpoint
from flexibert.space.design_space import ModelCard
from flexibert.space.seeds import SEED_CARDS
from flexibert.train.distill import layer_pairs, teacher_logits
from flexibert.train.encoding_cache import encoded_split
from flexibert.train.loop import predict
from flexibert.train.profiles import get_profile
from flexibert.train.tasks import get_task
from flexibert.train.tokenization import load_tokenizer
from flexibert.train.trial import TrialSpec, train_trial

from .conftest import GLUE_DIR, VOCAB

PROFILE = get_profile("quick", max_train_samples=300, lr=1e-3, log_every=5)
HOLDOUT = 100
STUDENT = ModelCard.homogeneous(l=1, a=2, h=128, f=256)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def spec(cache, card=STUDENT, **kw) -> TrialSpec:
    return TrialSpec(card, "sst2", PROFILE, data=GLUE_DIR, tokenizer=VOCAB, num_threads=1, cache_dir=cache,
                     holdout=HOLDOUT, **kw)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory, cache):
    return train_trial(spec(cache, SEED_CARDS["bert-tiny"]), tmp_path_factory.mktemp("teacher") / "t").checkpoint


def _weights(checkpoint):
    return {k: v.clone() for k, v in load_checkpoint(checkpoint)[0].state_dict().items()}


def test_cached_logits_are_the_teachers_own(teacher, cache):
    task = get_task("sst2")
    cached = teacher_logits(teacher, GLUE_DIR, task, cache, PROFILE.max_train_samples, HOLDOUT)
    again = teacher_logits(teacher, GLUE_DIR, task, cache, PROFILE.max_train_samples, HOLDOUT)
    model, tok = load_checkpoint(teacher)
    data = encoded_split(GLUE_DIR, task, "train", tok, tok.model_max_length, cache, PROFILE.max_train_samples,
                         HOLDOUT)
    fresh = predict(model, data, tok.pad_token_id)
    assert cached.shape == (PROFILE.max_train_samples, 2)
    np.testing.assert_allclose(cached, fresh, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(cached, again)
    assert len(list((cache / "teacher-logits").iterdir())) == 1


def test_alpha_zero_is_plain_fine_tuning_and_the_cache_is_reused(tmp_path, cache, teacher):
    plain = train_trial(spec(cache), tmp_path / "plain")
    zero = train_trial(spec(cache, distill={"teacher": teacher, "alpha": 0.0}), tmp_path / "zero")
    (cached,) = (cache / "teacher-logits").iterdir()
    before = cached.stat()
    half = train_trial(spec(cache, distill=teacher), tmp_path / "half")
    after = cached.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)  # read, not rewritten
    a, z, h = _weights(plain.checkpoint), _weights(zero.checkpoint), _weights(half.checkpoint)
    assert all(np.array_equal(a[k].numpy(), z[k].numpy()) for k in a)
    assert plain.metrics == zero.metrics
    assert not all(np.array_equal(a[k].numpy(), h[k].numpy()) for k in a)  # alpha 0.5 does change training


def test_hidden_states_distil_at_mapped_layers_of_equal_width(tmp_path, cache, teacher):
    assert layer_pairs((384,) * 3, (384,) * 6) == [(0, 1), (1, 3), (2, 5)]
    assert layer_pairs((128,), (128, 128)) == [(0, 1)]
    assert layer_pairs((128, 256), (256, 256, 256, 256)) == [(1, 3)]
    logits_only = train_trial(spec(cache, distill=teacher), tmp_path / "logits")
    hidden = train_trial(spec(cache, distill={"teacher": teacher, "hidden": True}), tmp_path / "hidden")
    assert logits_only.metrics != hidden.metrics or logits_only.curve != hidden.curve
    narrow = ModelCard.homogeneous(l=1, a=2, h=64, f=256)
    with pytest.raises(FlexiBertError, match="no layer of the child has the width"):
        train_trial(spec(cache, narrow, distill={"teacher": teacher, "hidden": True}), tmp_path / "narrow")


def test_bad_distillation_settings_fail_in_one_line(tmp_path, cache, teacher):
    for bad, pattern in [({"teacher": teacher, "alpha": 1.5}, "alpha must be in"),
                         ({"teacher": teacher, "temperature": 0}, "temperature must be a positive"),
                         ({"teacher": teacher, "hidden": "yes"}, "hidden must be true or false"),
                         ({"teacher": teacher, "beta": 1}, r"unknown key\(s\) \['beta'\]"),
                         (3, "expected a teacher path or a mapping")]:
        with pytest.raises(FlexiBertError, match=pattern):
            spec(cache, distill=bad)
    with pytest.raises(FlexiBertError, match="teacher checkpoint not found"):
        train_trial(spec(cache, distill=tmp_path / "nowhere"), tmp_path / "t")
    s = spec(cache, distill=teacher)
    assert dataclasses.replace(s, distill=None).distill is None and s.distill.alpha == 0.5
    assert load_tokenizer(teacher).model_max_length == PROFILE.max_seq_len
