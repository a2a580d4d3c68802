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


def test_a_capped_split_draws_whole_texts_first(sst2):
    """On a real sample of SST-2's training split: whole texts (checked by plain search) come before the parts of
    others; a cap above their number takes them all; data with no parts draws exactly as at random."""
    from flexibert.train.data import subset_indices
    from flexibert.train.holdout import whole_first

    train, dev = sst2
    sample = [train[i] for i in np.random.default_rng(1).choice(len(train), 1500, replace=False)]
    padded = [_padded(t) for t in sample]
    part = [any(p != q and p in q for q in padded) for p in padded]
    wholes = len(part) - sum(part)
    assert 0 < wholes < len(sample)
    few = whole_first(sample, wholes // 2, seed=3)
    assert not any(part[i] for i in few) and len(set(few)) == wholes // 2
    many = whole_first(sample, wholes + 100, seed=3)
    assert sum(not part[i] for i in many) == wholes and list(many) == sorted(many)
    assert not np.array_equal(whole_first(sample, 200, seed=3), whole_first(sample, 200, seed=4))
    plain = [t for t, p in zip(dev, (any(p != q and p in q for q in map(_padded, dev)) for p in map(_padded, dev)))
             if not p]
    assert np.array_equal(whole_first(plain, 300, seed=5), subset_indices(len(plain), 300, 5))


def test_a_run_s_subset_reaches_its_trials_and_its_baseline(tmp_path):
    """``training.subset`` goes from the run config to every trial's spec and to the TF-IDF baseline, which then
    train on SST-2's whole sentences only when the cap is below their number."""
    import yaml

    from flexibert.run import RunConfig
    from flexibert.search.budget import Budget
    from flexibert.search.oracles import TrainOracle
    from flexibert.train.baseline import tfidf_baseline
    from flexibert.train.encoding_cache import split_examples
    from tests.conftest import ROOT, VOCAB

    (tmp_path / "run.yaml").write_text(yaml.safe_dump({
        "name": "whole", "task": "sst2", "space": {"file": str(ROOT / "configs/spaces/flexibert-small.yaml")},
        "training": {"max_train_samples": 500, "subset": "whole-first"}}))
    search = RunConfig.from_yaml(tmp_path / "run.yaml").search_config("/LIB", str(VOCAB), 30522, {}, 300, 44, None,
                                                                      Budget())
    assert search.oracle.subset == "whole-first"
    card = {"l": 2, "a": [2, 2], "h": [128, 128], "f": [512, 512], "s": ["sdp", "sdp"]}
    assert TrainOracle("sst2", search.oracle).spec(card, None, 1).subset == "whole-first"
    task, held = get_task("sst2"), Holdout(300)
    whole = split_examples(GlueDir(GLUE_DIR), task, "train", 500, held, "whole-first")
    rest = [_padded(t) for t in zip(*split_examples(GlueDir(GLUE_DIR), task, "train", None, held).texts)]
    for text in np.random.default_rng(0).choice([_padded(t) for t in zip(*whole.texts)], 20, replace=False):
        assert not any(text != r and text in r for r in rest)  # inside no other training text
    drawn = {d: tfidf_baseline(task, GlueDir(GLUE_DIR), held, max_train_samples=500, subset=d)
             for d in ("random", "whole-first")}
    assert drawn["random"] != drawn["whole-first"]
