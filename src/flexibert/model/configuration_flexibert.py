"""``FlexiBertConfig``: a model card plus the usual BERT fields, as a ``transformers`` config.

The card is stored as four per-layer lists so that ``config.json`` stays plain
JSON that any ``transformers`` install can read. This file and ``modeling_flexibert.py``
form a pair that can be copied beside a checkpoint as remote code: the imports
of the ``flexibert`` package sit in a ``try`` block, which ``transformers``
skips when it checks remote code, and without the package the config only
loads and runs (no card validation, ``.card`` or ``.arch_dims``).
"""

from __future__ import annotations

from dataclasses import field
from typing import Any

from transformers import PreTrainedConfig

try:  # inside the flexibert package
    from flexibert._common import FlexiBertError
    from flexibert.model.cost import ArchDims
    from flexibert.space.design_space import DesignSpace, ModelCard
except ImportError:  # copied beside a checkpoint as remote code
    ArchDims = DesignSpace = ModelCard = None  # type: ignore[assignment,misc]
    FlexiBertError = ValueError  # type: ignore[assignment,misc]

POSITION_EMBEDDING_TYPES = ("relative_key", "absolute")
POOLINGS = ("cls", "mean")


class FlexiBertConfig(PreTrainedConfig):
    """A heterogeneous BERT encoder: layer ``j`` has ``attention_heads[j]`` heads of width
    ``hidden_sizes[j]``, a feed-forward of ``intermediate_sizes[j]`` and similarity
    ``similarities[j]`` (``"sdp"`` or ``"wma"``). The default card is BERT-Tiny.

    ``mlm_decode_masked_only``: with labels, ``FlexiBertForMaskedLM`` decodes the vocabulary only at
    the labelled positions and returns logits of shape (labelled tokens, vocab_size) instead of
    Hugging Face's (batch, seq, vocab_size); the loss is the same. Off by default; MLM pretraining
    turns it on, since decoding every position dominates the cost of small models on a CPU.

    ``classifier_pooling``: what the pooler reads, ``"cls"`` (BERT's first token) or ``"mean"`` (the
    mean of the unpadded tokens, as sentence-transformers encoders are trained to be read)."""

    model_type = "flexibert"

    attention_heads: list[int] = field(default_factory=lambda: [2, 2])
    hidden_sizes: list[int] = field(default_factory=lambda: [128, 128])
    intermediate_sizes: list[int] = field(default_factory=lambda: [512, 512])
    similarities: list[str] = field(default_factory=lambda: ["sdp", "sdp"])
    vocab_size: int = 30522
    type_vocab_size: int = 2
    max_position_embeddings: int = 512
    position_embedding_type: str = "relative_key"
    max_relative_position: int = 64
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    classifier_dropout: float | None = None
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    pad_token_id: int | None = 0
    tie_word_embeddings: bool = True
    mlm_decode_masked_only: bool = False
    classifier_pooling: str = "cls"

    def __post_init__(self, **kwargs: Any) -> None:
        super().__post_init__(**kwargs)
        if self.position_embedding_type not in POSITION_EMBEDDING_TYPES:
            raise FlexiBertError(
                f"config: position_embedding_type {self.position_embedding_type!r} is not one of "
                f"{list(POSITION_EMBEDDING_TYPES)}"
            )
        if self.classifier_pooling not in POOLINGS:
            raise FlexiBertError(
                f"config: classifier_pooling {self.classifier_pooling!r} is not one of {list(POOLINGS)}"
            )
        for key in ("vocab_size", "type_vocab_size", "max_position_embeddings", "max_relative_position"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise FlexiBertError(f"config: {key} must be a positive integer, got {value!r}")
        if ModelCard is not None:
            self.card  # noqa: B018 - building the card validates the per-layer lists

    @classmethod
    def from_card(cls, card: "ModelCard", space: "DesignSpace | None" = None, **kwargs: Any) -> "FlexiBertConfig":
        """Config for ``card``; with ``space``, the card must also lie in that space."""
        if space is not None:
            space.validate(card)
        return cls(
            attention_heads=list(card.a),
            hidden_sizes=list(card.h),
            intermediate_sizes=list(card.f),
            similarities=list(card.s),
            **kwargs,
        )

    @property
    def num_hidden_layers(self) -> int:
        return len(self.hidden_sizes)

    @property
    def card(self) -> "ModelCard":
        """The model card (raises FlexiBertError when the per-layer lists do not form one)."""
        lists = (self.attention_heads, self.hidden_sizes, self.intermediate_sizes, self.similarities)
        if not all(isinstance(v, (list, tuple)) for v in lists):
            raise FlexiBertError(
                "config: attention_heads, hidden_sizes, intermediate_sizes and similarities must be lists"
            )
        return ModelCard(l=len(self.hidden_sizes), a=lists[0], h=lists[1], f=lists[2], s=lists[3])

    @property
    def arch_dims(self) -> "ArchDims":
        """The non-card sizes, so that ``flexibert.model.cost`` counts exactly what the model builds."""
        return ArchDims(
            vocab_size=self.vocab_size,
            type_vocab_size=self.type_vocab_size,
            max_position_embeddings=self.max_position_embeddings,
            position_embedding_type=self.position_embedding_type,
            max_relative_position=self.max_relative_position,
        )


__all__ = ["FlexiBertConfig"]
