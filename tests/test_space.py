"""Design space: counting, enumeration order, validation, against the study's real library."""

from __future__ import annotations

import itertools

import pytest

from flexibert._common import FlexiBertError
from flexibert.space.design_space import DesignSpace, ModelCard
from tests.conftest import SMALL_SPACE


def test_counts_are_exact_and_match_enumeration(small_space):
    assert small_space.count() == 2037
    assert small_space.count(2) == 162 and small_space.count(4) == 1875
    assert sum(1 for _ in small_space) == 2037
    full = DesignSpace.from_yaml(SMALL_SPACE, rule="full")
    assert full.count() == 332_352
    # The full count is checked against enumeration on the 2-layer slice (the 4-layer one is 331,776 cards).
    assert full.count(2) == sum(1 for c in itertools.islice(full, 10**6) if c.l == 2)


def test_counting_handles_divisibility_and_bigger_spaces():
    spec = {"layers": [1, 2, 3], "heads": [2, 3, 12], "hidden": [128, 256, 768], "feed_forward": [512, 3072],
            "similarity": ["sdp", "wma"]}
    for rule in ("monotone", "full"):
        s = DesignSpace.from_dict(spec, rule=rule)
        cards = list(s)
        assert len(cards) == s.count() > 0
        assert len({c.key for c in cards}) == len(cards)
        assert all(h % a == 0 for c in cards for a, h in zip(c.a, c.h))
        assert all(c in s for c in cards[:: max(1, len(cards) // 200)])


def test_enumeration_order_equals_the_study(small_space, study):
    cards = [c.to_dict() for c in small_space]
    expected = [ModelCard.from_dict(d).to_dict() for d in study["model_dicts"]]
    assert cards == expected


def test_card_round_trip_and_identity():
    card = ModelCard.from_dict({"l": 2, "a": [2, 4], "h": [128, 256], "f": [512, 1024], "s": ["sdp", "wma"]})
    assert ModelCard.from_dict(card.to_dict()) == card
    assert hash(card) == hash(ModelCard.from_dict(card.to_dict()))
    with pytest.raises(AttributeError):
        card.l = 3  # immutable


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"l": 2, "a": [2, 2], "h": [128, 128], "f": [512, 512], "s": ["sdp", "sdp"], "x": 1}, "unknown key"),
        ({"l": 2, "a": [2], "h": [128, 128], "f": [512, 512], "s": ["sdp", "sdp"]}, "has 1 entries but l = 2"),
        ({"l": 2, "a": [2, 2], "h": [128, 128], "f": [512, 512], "s": ["sdp", "dot"]}, "unknown similarity"),
        ({"l": 2, "a": [2, 2], "h": [128, 128], "f": [512, 512]}, "missing key"),
        ({"l": 1, "a": [3], "h": [128], "f": [512], "s": ["sdp"]}, "not divisible"),
    ],
)
def test_malformed_cards(raw, message):
    with pytest.raises(FlexiBertError, match=message):
        ModelCard.from_dict(raw)


def test_space_validation(small_space):
    ok = ModelCard.from_dict({"l": 2, "a": [2, 4], "h": [128, 256], "f": [512, 2048], "s": ["sdp", "wma"]})
    assert small_space.validate(ok) is ok
    with pytest.raises(FlexiBertError, match="not in the space"):
        small_space.validate(ModelCard.homogeneous(2, 2, 128, 3072))
    with pytest.raises(FlexiBertError, match="l = 3"):
        small_space.validate(ModelCard.homogeneous(3, 2, 128, 512))
    decreasing = ModelCard.from_dict({"l": 2, "a": [4, 2], "h": [256, 256], "f": [512, 512], "s": ["sdp", "sdp"]})
    with pytest.raises(FlexiBertError, match="non-decreasing"):
        small_space.validate(decreasing)
    wma_first = ModelCard.from_dict({"l": 2, "a": [2, 2], "h": [128, 128], "f": [512, 512], "s": ["wma", "sdp"]})
    assert wma_first not in small_space
    assert wma_first in DesignSpace.from_yaml(SMALL_SPACE, rule="full")


@pytest.mark.parametrize(
    "text, message",
    [
        ("layers: [2, 4]\nheads: [2]\nhidden: [128]\nfeed_forward: [512]\nsimilarity: [sdp]\ncolour: red\n",
         "unknown key"),
        ("layers: [2, 4]\nheads: [2]\nhidden: [128]\nfeed_forward: [512]\n", "missing key"),
        ("layers: [2, 4\nheads: [2]\n", "malformed YAML"),
        ("layers: [2, -4]\nheads: [2]\nhidden: [128]\nfeed_forward: [512]\nsimilarity: [sdp]\n", "positive integers"),
        ("layers: [2]\nheads: [2]\nhidden: [128]\nfeed_forward: [512]\nsimilarity: [cosine]\n", "similarity"),
        ("- just\n- a list\n", "must be a mapping"),
    ],
)
def test_malformed_specs(tmp_path, text, message):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    with pytest.raises(FlexiBertError, match=message):
        DesignSpace.from_yaml(path)
