"""The leak-free holdout on SST-2's real training split, checked against plain substring search."""

from __future__ import annotations

import numpy as np
import pytest

from flexibert._common import FlexiBertError
from flexibert.train.data import GlueDir, load_split
from flexibert.train.holdout import Holdout, plan_holdout, split_overlap, words
from flexibert.train.tasks import get_task
from tests.conftest import GLUE_DIR


@pytest.fixture(scope="module")
def sst2():
    task = get_task("sst2")
    train, dev = (list(zip(*load_split(GlueDir(GLUE_DIR), task, s).texts)) for s in ("train", "dev"))
    return train, dev


def _padded(row: tuple[str, ...]) -> str:
    """A text as spaced words, so that Python's ``in`` finds whole-word containment: the oracle."""
    return " " + " ".join(words(row)) + " "


def test_grouped_holdout_shares_no_text_with_what_is_trained_on(sst2):
    train, _ = sst2
    plan = plan_holdout(train, 1000, seed=7)
    assert len(plan.validation) == 1000
    assert len(plan.rest) + len(plan.validation) + len(plan.dropped) == len(train)
    assert not set(plan.rest) & set(plan.validation) and not set(plan.dropped) & set(plan.rest)
    rest = [_padded(train[i]) for i in plan.rest]
    rng = np.random.default_rng(0)
    for i in rng.choice(plan.validation, 30, replace=False):  # a sample: plain search is quadratic
        v = _padded(train[i])
        assert not any(v in r or r in v for r in rest), train[i]
    # Every dropped example does share text with a held-out one, so nothing is dropped needlessly.
    held = [_padded(train[i]) for i in plan.validation]
    for i in rng.choice(plan.dropped, 30, replace=False):
        d = _padded(train[i])
        assert any(d in v or v in d for v in held), train[i]
    # SST-2 holds each sentence with its phrases: the held-out texts are whole ones, as dev's are.
    assert plan.describe()["dropped"] > 1000


def test_random_holdout_is_the_earlier_uniform_draw(sst2):
    train, _ = sst2
    plan = plan_holdout(train, 500, seed=7, split="random")
    perm = np.random.default_rng(7).permutation(len(train))
    assert list(plan.validation) == sorted(perm[:500]) and len(plan.dropped) == 0


def test_the_draw_is_fixed_by_its_seed(sst2):
    train, _ = sst2
    a, b, c = (plan_holdout(train[:5000], 300, seed=s).validation for s in (7, 7, 8))
    assert list(a) == list(b) != list(c)


def test_pairs_contain_each_other_only_column_by_column():
    rows = [("what is a cat ?", "a cat is an animal ."), ("what is a cat ?", "a dog is an animal ."),
            ("a cat ? a cat", "is"), ("what is it", "a cat is an animal . and more")]
    plan = plan_holdout(rows, 1, seed=0)
    whole = {tuple(rows[i]) for i in plan.validation}
    assert whole <= {rows[0], rows[1], rows[2], rows[3]}
    assert words(rows[0])[:5] == ("what", "is", "a", "cat", "?") and "\x1f" in words(rows[0])
    # The second column of row 3 contains row 0's, but across the separator nothing spans two columns.
    assert _padded(rows[0]) not in _padded(rows[3])


def test_too_large_a_holdout_is_one_clear_error():
    rows = [("a b c",), ("a b",), ("b c",), ("a b c",)]  # one whole text only
    with pytest.raises(FlexiBertError, match="needs 2 distinct texts that no other text contains"):
        plan_holdout(rows, 2, seed=0)
    with pytest.raises(FlexiBertError, match="holdout_split"):
        Holdout(10, "stratified")
    with pytest.raises(FlexiBertError, match="at least 1"):
        Holdout(0)


def test_dev_overlap_matches_plain_search(sst2):
    train, dev = sst2
    dev = dev[::9]  # a sample: plain search is quadratic
    got = split_overlap(train, dev)
    padded_train = [_padded(t) for t in train]
    exact_set = set(padded_train)
    padded_dev = [_padded(d) for d in dev]
    exact = sum(d in exact_set for d in padded_dev)
    inside = sum(d not in exact_set and any(d in t for t in padded_train) for d in padded_dev)
    assert got == {"dev": len(dev), "exact": exact, "inside_train": inside,
                   "contains_train_half": got["contains_train_half"]}
    assert 0 <= got["contains_train_half"] < len(dev)
