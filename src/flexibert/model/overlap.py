"""Which weights a query model can inherit from a trained source, from the two cards alone.

The rule (the study's, with its quirks fixed): each query layer is mapped to a source
layer (``layer_map``) and inherits from it when their width and head count match.
``bottom`` (the study's) maps layer j to layer j and stops at the first mismatch: the
longest matching prefix. ``uniform`` spreads a shallower query over the source's depth,
layer j to ``round((j + 1) * Ls / Lq) - 1`` with halves rounded up (3 of 6 layers:
1, 3, 5), as TinyBERT and PKD-Skip map a student's layers to its teacher's; it is the
identity when the query is at least as deep. Under ``uniform`` every matching pair
inherits, not only a prefix: a mismatch in the middle leaves that one layer fresh.
An inheriting layer copies the attention block, ``W`` where both layers are WMA, the
FFN where the query's is no wider than the source's (a narrower one takes a subset of
the source's neurons, chosen by ``flexibert.model.importance``), and a projection where
both layers have one of the same shape. Embeddings are copied when the first widths match.

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

from flexibert._common import FlexiBertError
from flexibert.model.cost import ArchDims, param_blocks
from flexibert.space.design_space import ModelCard

#: The per-layer blocks of ``cost.param_blocks``, in the column order of :class:`CardLayers`.
LAYER_BLOCKS: tuple[str, ...] = ("attention", "wma", "ffn", "projection")
#: How query layers are matched to source layers (see the module docstring).
LAYER_MAPS: tuple[str, ...] = ("bottom", "uniform")


#: How a narrower FFN picks the source neurons it keeps (``model.importance``): Taylor importance, weight
#: magnitude, or the first ones. The plan is the same for each: only which neurons move differs.
FFN_SELECTS: tuple[str, ...] = ("importance", "magnitude", "first")


def check_ffn_select(ffn_select: str) -> str:
    """``ffn_select`` itself, or one error naming the choices."""
    if ffn_select not in FFN_SELECTS:
        raise FlexiBertError(f"ffn_select must be one of {list(FFN_SELECTS)}, got {ffn_select!r}")
    return ffn_select


def check_layer_map(layer_map: str) -> str:
    """``layer_map`` itself, or one error naming the choices, before any pair is looked at."""
    if layer_map not in LAYER_MAPS:
        raise FlexiBertError(f"layer_map must be one of {list(LAYER_MAPS)}, got {layer_map!r}")
    return layer_map


def uniform_source_layer(j: int, query_depth: int, source_depth: int) -> int:
    """The source layer that ``uniform`` maps query layer ``j`` to, in integers so that arrays agree exactly."""
    if query_depth >= source_depth:
        return j
    return (2 * (j + 1) * source_depth + query_depth) // (2 * query_depth) - 1


@dataclass(frozen=True)
class TransferPlan:
    """What a query inherits from a source: blocks to copy, the encoder overlap, and the embeddings beside it."""

    blocks: tuple[str, ...]  # names from ``cost.param_blocks``, "embeddings" included when copied
    layers: tuple[tuple[int, int], ...]  # (query layer, source layer) of every inheriting layer
    pruned: tuple[int, ...]  # query layers whose FFN takes a subset of its source layer's neurons
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


def layer_pairs(query: ModelCard, source: ModelCard, layer_map: str = "bottom") -> tuple[tuple[int, int], ...]:
    """(query layer, source layer) of every query layer that inherits: mapped, with equal width and heads."""
    if check_layer_map(layer_map) == "bottom":
        return tuple((j, j) for j in range(matching_prefix(query, source)))
    pairs = []
    for j in range(query.l):
        m = uniform_source_layer(j, query.l, source.l)
        if m < source.l and (query.h[j], query.a[j]) == (source.h[m], source.a[m]):
            pairs.append((j, m))
    return tuple(pairs)


def transfer_blocks(query: ModelCard, source: ModelCard, layer_map: str = "bottom") -> tuple[str, ...]:
    """Names of the query's parameter blocks (see ``cost.param_blocks``) that the source can fill."""
    plan = []
    if query.h[0] == source.h[0]:
        plan.append("embeddings")
    for j, m in layer_pairs(query, source, layer_map):
        plan.append(f"layer.{j}.attention")
        if query.s[j] == source.s[m] == "wma":
            plan.append(f"layer.{j}.wma")
        if query.f[j] <= source.f[m]:
            plan.append(f"layer.{j}.ffn")
        q_next = query.h[j + 1] if j + 1 < query.l else None
        s_next = source.h[m + 1] if m + 1 < source.l else None
        if q_next is not None and q_next == s_next and q_next != query.h[j]:
            plan.append(f"layer.{j}.projection")
    return tuple(plan)


def transfer_plan(query: ModelCard, source: ModelCard, dims: ArchDims = ArchDims(),
                  layer_map: str = "bottom") -> TransferPlan:
    """The blocks ``source`` can fill in ``query`` and what they amount to under the run's ``dims``."""
    blocks = param_blocks(query, dims)
    names = transfer_blocks(query, source, layer_map)
    layers = layer_pairs(query, source, layer_map)
    embedding_params = blocks.pop("embeddings")
    return TransferPlan(
        blocks=names,
        layers=layers,
        pruned=tuple(j for j, m in layers if query.f[j] < source.f[m]),
        transferred=sum(blocks[name] for name in names if name != "embeddings"),
        total=sum(blocks.values()),
        embedding_params=embedding_params,
    )


def overlap(query: ModelCard, source: ModelCard, dims: ArchDims = ArchDims(), layer_map: str = "bottom") -> float:
    """Transferred encoder-layer parameters / all encoder-layer parameters of the query."""
    return transfer_plan(query, source, dims, layer_map).fraction


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

        self.depth = depth
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

    def overlap(self, queries: np.ndarray, sources: np.ndarray, layer_map: str = "bottom") -> np.ndarray:
        """:func:`overlap` of card ``queries[i]`` from card ``sources[i]`` (index arrays, broadcast together).

        Rows are gathered before broadcasting, so ``queries[:, None]`` against ``sources[None, :]``
        reads each card once and the all-pairs work is plain arithmetic.
        """
        q, s = np.asarray(queries, dtype=np.intp), np.asarray(sources, dtype=np.intp)
        if check_layer_map(layer_map) == "bottom":
            def mapped(column: np.ndarray) -> np.ndarray:
                return column[s]
        else:
            width = self.h.shape[1]
            j = np.arange(width)
            lq, ls = self.depth[q][..., None], self.depth[s][..., None]
            # uniform_source_layer on every column; past the query's depth the index only has to stay in range.
            m = np.minimum(np.where(lq < ls, (2 * (j + 1) * ls + lq) // (2 * lq) - 1, j), width - 1)

            def mapped(column: np.ndarray) -> np.ndarray:
                return np.take_along_axis(column[s], m, axis=-1)
        # Past the query's depth every count is zero, so padded columns add nothing wherever they match.
        match = (self.h[q] == mapped(self.h)) & (self.a[q] == mapped(self.a))
        inherits = np.logical_and.accumulate(match, axis=-1) if layer_map == "bottom" else match
        moved = (self.attention[q]
                 + np.where(mapped(self.wma), self.wma_params[q], 0)  # zero unless the query layer is WMA too
                 + np.where(self.f[q] <= mapped(self.f), self.ffn[q], 0)
                 # zero unless the query's next width differs from this one
                 + np.where(self.h_next[q] == mapped(self.h_next), self.projection[q], 0))
        return np.where(inherits, moved, 0).sum(axis=-1) / self.total[q]
