"""Tokenizers: the shared uncased vocabulary, and a WordPiece trained, cached, saved and reloaded."""

from __future__ import annotations

import pytest

from flexibert._common import FlexiBertError
from flexibert.train.data import load_split
from flexibert.train.tasks import get_task
from flexibert.train.tokenization import (
    SPECIAL_TOKENS,
    cached_wordpiece,
    load_tokenizer,
    resolve_tokenizer,
    tokenizer_digest,
    train_wordpiece,
)

from .conftest import GLUE_DIR, VOCAB


@pytest.fixture(scope="module")
def sst2_dev_texts():
    return list(load_split(GLUE_DIR, get_task("sst2"), "dev").texts[0])


def test_shared_vocab_has_30522_tokens_and_knows_english(sst2_dev_texts):
    tok = load_tokenizer(VOCAB)
    assert len(tok) == 30522 == len(VOCAB.read_text(encoding="utf-8").splitlines())
    ids = tok("It's a charming and often affecting journey.")["input_ids"]
    assert tok.convert_ids_to_tokens(ids) == [
        "[CLS]", "it", "'", "s", "a", "charming", "and", "often", "affecting", "journey", ".", "[SEP]"]
    unk = sum(i == tok.unk_token_id for t in sst2_dev_texts[:200] for i in tok(t)["input_ids"])
    assert unk == 0


def test_too_small_or_missing_vocabularies_are_refused(tmp_path):
    (tmp_path / "vocab.txt").write_text("\n".join(SPECIAL_TOKENS) + "\n")
    with pytest.raises(FlexiBertError, match="only 5 tokens"):
        load_tokenizer(tmp_path / "vocab.txt")
    with pytest.raises(FlexiBertError, match="tokenizer not found"):
        load_tokenizer(tmp_path / "missing")


def test_wordpiece_train_save_load_round_trip(tmp_path, sst2_dev_texts):
    trained = train_wordpiece(sst2_dev_texts, vocab_size=1500)
    assert 500 < len(trained) <= 1500
    assert trained.convert_ids_to_tokens(list(range(5))) == list(SPECIAL_TOKENS)
    assert {"movie", "film"} <= set(trained.get_vocab())
    trained.save_pretrained(str(tmp_path / "saved"))
    loaded = load_tokenizer(tmp_path / "saved")
    sample = sst2_dev_texts[:100]
    assert [loaded(t)["input_ids"] for t in sample] == [trained(t)["input_ids"] for t in sample]
    assert trained.unk_token_id not in {i for t in sample for i in loaded(t)["input_ids"]}
    assert tokenizer_digest(loaded) == tokenizer_digest(trained)
    assert tokenizer_digest(loaded) != tokenizer_digest(load_tokenizer(VOCAB))


def test_trained_tokenizer_is_cached_by_text_and_settings(tmp_path, sst2_dev_texts):
    path = cached_wordpiece(sst2_dev_texts, tmp_path, vocab_size=1500)
    stamp = (path / "tokenizer.json").stat().st_mtime_ns
    assert cached_wordpiece(sst2_dev_texts, tmp_path, vocab_size=1500) == path  # no retraining
    assert (path / "tokenizer.json").stat().st_mtime_ns == stamp
    assert cached_wordpiece(sst2_dev_texts, tmp_path, vocab_size=1000) != path
    assert resolve_tokenizer(None, sst2_dev_texts[:300], tmp_path) != str(path)
    assert len(load_tokenizer(path)) > 500


def test_resolve_needs_text_or_spec():
    assert resolve_tokenizer(VOCAB) == str(VOCAB)
    with pytest.raises(FlexiBertError, match="no tokenizer given"):
        resolve_tokenizer(None)
