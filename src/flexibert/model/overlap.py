"""Which weights a query model can inherit from a trained source, from the two cards alone.

The rule (the study's, with its quirks fixed): the query takes the longest prefix
of the source's layers whose width and head count match its own. Within that
prefix it copies the attention block, ``W`` where both layers are WMA, the FFN
where the feed-forward sizes also match, and a projection where both models have
one of the same shape. Embeddings are copied when the first widths match.

The overlap is the paper's: transferred *encoder-layer* parameters over all
encoder-layer parameters of the query. Embeddings are reported beside it, not in
it: the word embeddings are most of a small model's parameters, so counting them
would let a query that shares no layer with its source pass a 0.9 threshold. An
identical source gives exactly 1.0. The PyTorch transfer in ``flexibert.model.transfer``
applies the same plan, and the tests check the two agree.

:func:`transfer_plan` is the readable per-pair rule; :class:`CardLayers` computes the
same fraction for many pairs at once (the learner asks it for every ranked
candidate of a 332k-model space), and the tests check the two are equal exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from flexibert.model.cost import ArchDims, param_blocks
from flexibert.space.design_space import ModelCard

#: The per-layer blocks of ``cost.param_blocks``, in the column order of :class:`CardLayers`.
LAYER_BLOCKS: tuple[str, ...] = ("attention", "wma", "ffn", "projection")


@dataclass(frozen=True)
class TransferPlan:
    """What a query inherits from a source: blocks to copy, the encoder overlap, and the embeddings beside it."""

    blocks: tuple[str, ...]  # names from ``cost.param_blocks``, "embeddings" included when copied
    transferred: int  # encoder-layer parameters copied
    total: int  # encoder-layer parameters of the query
    embedding_params: int  # the query's embedding parameters (under the run's vocabulary and positions)

    @property
    def embeddings(self) -> bool:
        return "embeddings" in self.blocks

    @property
    def fraction(self) -> float:
        """The overlap: share of the query's encoder layers filled from the source."""
        return self.transferred / self.total

    @property
    def embedding_share(self) -> float:
        """Share of the query's embedding + encoder parameters that sits in the embeddings."""
        return self.embedding_params / (self.embedding_params + self.total)


def matching_prefix(query: ModelCard, source: ModelCard) -> int:
    """Number of leading layers with equal width and head count."""
    p = 0
    for hq, aq, hs, as_ in zip(query.h, query.a, source.h, source.a):
        if (hq, aq) != (hs, as_):
            break
        p += 1
    return p


def transfer_blocks(query: ModelCard, source: ModelCard) -> tuple[str, ...]:
    """Names of the query's parameter blocks (see ``cost.param_blocks``) that the source can fill."""
    plan = []
    if query.h[0] == source.h[0]:
        plan.append("embeddings")
    for j in range(matching_prefix(query, source)):
        plan.append(f"layer.{j}.attention")
        if query.s[j] == source.s[j] == "wma":
            plan.append(f"layer.{j}.wma")
        if query.f[j] == source.f[j]:
            plan.append(f"layer.{j}.ffn")
        q_next = query.h[j + 1] if j + 1 < query.l else None
        s_next = source.h[j + 1] if j + 1 < source.l else None
        if q_next is not None and q_next == s_next and q_next != query.h[j]:
            plan.append(f"layer.{j}.projection")
    return tuple(plan)


def transfer_plan(query: ModelCard, source: ModelCard, dims: ArchDims = ArchDims()) -> TransferPlan:
    """The blocks ``source`` can fill in ``query`` and what they amount to under the run's ``dims``."""
    blocks = param_blocks(query, dims)
    names = transfer_blocks(query, source)
    embedding_params = blocks.pop("embeddings")
    return TransferPlan(
        blocks=names,
        transferred=sum(blocks[name] for name in names if name != "embeddings"),
        total=sum(blocks.values()),
        embedding_params=embedding_params,
    )


def overlap(query: ModelCard, source: ModelCard, dims: ArchDims = ArchDims()) -> float:
    """Transferred encoder-layer parameters / all encoder-layer parameters of the query."""
    return transfer_plan(query, source, dims).fraction


class CardLayers:
    """Cards as padded per-layer arrays, so that :func:`overlap` runs over many pairs in one array pass.

    Row ``i``, column ``j`` describes layer ``j`` of card ``i``; columns past a card's depth
    hold zeros. The parameter counts are ``cost.param_blocks``'s own, taken once per
    distinct (width, heads, feed-forward, similarity, next width) layer.
    """

    def __init__(self, cards: Sequence[ModelCard], dims: ArchDims = ArchDims()) -> None:
        depth = np.array([c.l for c in cards])
        width = int(depth.max())

        def padded(values: Callable[[ModelCard], Sequence[int]]) -> np.ndarray:
            out = np.zeros((len(cards), width), dtype=np.int64)
            for l in np.unique(depth).tolist():  # noqa: E741 - rows of one depth fill a rectangle
                rows = np.flatnonzero(depth == l)
                out[rows, :l] = [values(cards[i]) for i in rows.tolist()]
            return out

        self.h, self.a, self.f = padded(lambda c: c.h), padded(lambda c: c.a), padded(lambda c: c.f)
        self.wma = padded(lambda c: [s == "wma" for s in c.s]).astype(bool)
        self.h_next = np.zeros_like(self.h)
        self.h_next[:, :-1] = self.h[:, 1:]
        key = np.zeros(self.h.size, dtype=np.int64)  # one number per distinct layer: its fields' ranks, mixed radix
        for column in (self.h, self.a, self.f, self.wma, self.h_next):
            values, rank = np.unique(column, return_inverse=True)
            key = key * len(values) + rank.reshape(-1)
        _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        counts = np.zeros((len(first), len(LAYER_BLOCKS)), dtype=np.int64)
        for u, flat in enumerate(first.tolist()):
            i, j = divmod(flat, width)
            if j < cards[i].l:
                blocks = param_blocks(cards[i], dims)
                counts[u] = [blocks.get(f"layer.{j}.{b}", 0) for b in LAYER_BLOCKS]
        per_layer = counts[inverse.reshape(-1)].reshape(len(cards), width, len(LAYER_BLOCKS))
        self.attention, self.wma_params, self.ffn, self.projection = np.moveaxis(per_layer, -1, 0)
        self.total = per_layer.sum(axis=(1, 2))

    def overlap(self, queries: np.ndarray, sources: np.ndarray) -> np.ndarray:
        """:func:`overlap` of card ``queries[i]`` from card ``sources[i]`` (index arrays, broadcast together).

        Rows are gathered before broadcasting, so ``queries[:, None]`` against ``sources[None, :]``
        reads each card once and the all-pairs work is plain arithmetic.
        """
        q, s = np.asarray(queries, dtype=np.intp), np.asarray(sources, dtype=np.intp)
        # Past the query's depth every count is zero, so padded columns add nothing wherever they match.
        prefix = np.logical_and.accumulate((self.h[q] == self.h[s]) & (self.a[q] == self.a[s]), axis=-1)
        moved = (self.attention[q]
                 + np.where(self.wma[s], self.wma_params[q], 0)  # zero unless the query layer is WMA too
                 + np.where(self.f[q] == self.f[s], self.ffn[q], 0)
                 # zero unless the query's next width differs from this one
                 + np.where(self.h_next[q] == self.h_next[s], self.projection[q], 0))
        return np.where(prefix, moved, 0).sum(axis=-1) / self.total[q]
