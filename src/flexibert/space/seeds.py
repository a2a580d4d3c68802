"""The study's four seed architectures, the BERT miniatures its search starts from."""

from __future__ import annotations

from flexibert._common import FlexiBertError
from flexibert.space.design_space import ModelCard

SEED_CARDS: dict[str, ModelCard] = {
    "bert-tiny": ModelCard.homogeneous(l=2, a=2, h=128, f=512),
    "bert-mini": ModelCard.homogeneous(l=4, a=4, h=256, f=1024),
    "bert-l2-h256": ModelCard.homogeneous(l=2, a=4, h=256, f=1024),
    "bert-l4-h128": ModelCard.homogeneous(l=4, a=2, h=128, f=512),
}


def seed_card(name: str) -> ModelCard:
    key = name.lower().replace("_", "-")
    if key not in SEED_CARDS:
        raise FlexiBertError(f"unknown seed model {name!r}; expected one of {sorted(SEED_CARDS)}")
    return SEED_CARDS[key]


def card_name(card: ModelCard) -> str:
    """The seed's name for a seed card, else a short stable digest of the card."""
    import hashlib

    for name, seed in SEED_CARDS.items():
        if seed == card:
            return name
    return "card-" + hashlib.sha256(card.key.encode()).hexdigest()[:12]
