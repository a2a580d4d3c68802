"""Parameter counts and FLOPs of a card, computed from the card alone (no torch).

This is the architecture contract the PyTorch model follows: every trainable
tensor of ``FlexiBertModel`` belongs to exactly one named *block* below, and the
tests check ``param_blocks`` against ``numel`` of the built model. Active learning
calls these thousands of times, so they must stay cheap and torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass

from flexibert.space.design_space import ModelCard

#: The position schemes a FlexiBERT encoder implements (``configuration_flexibert`` holds its own copy, as the
#: standalone remote code must; a test keeps the two equal).
POSITION_SCHEMES: tuple[str, ...] = ("relative_key", "absolute")


@dataclass(frozen=True)
class ArchDims:
    """The non-card fields that change parameter counts."""

    vocab_size: int = 30522
    type_vocab_size: int = 2
    max_position_embeddings: int = 512
    position_embedding_type: str = "relative_key"  # or "absolute"
    max_relative_position: int = 64  # distances are clipped to [-R, R]


def head_dim(card: ModelCard, j: int) -> int:
    return card.h[j] // card.a[j]


def param_blocks(card: ModelCard, dims: ArchDims = ArchDims()) -> dict[str, int]:
    """Parameters of the embeddings and encoder, by block name (the pooler and task head excluded)."""
    h0 = card.h[0]
    emb = dims.vocab_size * h0 + dims.type_vocab_size * h0 + 2 * h0
    if dims.position_embedding_type == "absolute":
        emb += dims.max_position_embeddings * h0
    blocks = {"embeddings": emb}
    for j in range(card.l):
        h, f, d = card.h[j], card.f[j], head_dim(card, j)
        attn = 4 * (h * h + h) + 2 * h
        if dims.position_embedding_type == "relative_key":
            attn += (2 * dims.max_relative_position + 1) * d
        blocks[f"layer.{j}.attention"] = attn
        if card.s[j] == "wma":
            blocks[f"layer.{j}.wma"] = d * d
        blocks[f"layer.{j}.ffn"] = 2 * h * f + f + h + 2 * h
        if j + 1 < card.l and card.h[j + 1] != h:
            blocks[f"layer.{j}.projection"] = h * card.h[j + 1] + card.h[j + 1]
    return blocks


def param_count(card: ModelCard, dims: ArchDims = ArchDims(), num_labels: int | None = None) -> int:
    """Total parameters; with ``num_labels``, include the pooler and classifier too."""
    total = sum(param_blocks(card, dims).values())
    if num_labels is not None:
        hl = card.h[-1]
        total += hl * hl + hl + hl * num_labels + num_labels
    return total


def flops(card: ModelCard, seq_len: int = 128, dims: ArchDims = ArchDims()) -> int:
    """Forward-pass FLOPs of the encoder for one sequence (a multiply-add counts 2)."""
    n = seq_len
    total = 0
    for j in range(card.l):
        h, f, d, a = card.h[j], card.f[j], head_dim(card, j), card.a[j]
        total += 2 * n * 4 * h * h  # q, k, v and output projections
        total += 2 * 2 * n * n * h  # q k^T and attention x v, over all heads
        if card.s[j] == "wma":
            total += 2 * n * a * d * d  # q W before q W k^T
        if dims.position_embedding_type == "relative_key":
            used = 2 * min(dims.max_relative_position, n - 1) + 1  # distance-table rows a sequence of n can reach
            total += 2 * n * used * h  # q r^T against those rows, then gathered
        total += 2 * 2 * n * h * f  # feed-forward
        if j + 1 < card.l and card.h[j + 1] != h:
            total += 2 * n * h * card.h[j + 1]
    return total
