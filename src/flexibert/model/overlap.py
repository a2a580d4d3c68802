"""Which weights a query model can inherit from a trained source, from the two cards alone.

The rule (the study's, with its quirks fixed): the query takes the longest prefix
of the source's layers whose width and head count match its own. Within that
prefix it copies the attention block, ``W`` where both layers are WMA, the FFN
where the feed-forward sizes also match, and a projection where both models have
one of the same shape. Embeddings are copied when the first widths match.

The overlap fraction counts *parameters* (the 2021 code counted tensors), so an
identical source gives exactly 1.0. The PyTorch transfer in ``flexibert.model.transfer``
applies the same plan, and the tests check the two agree.
"""

from __future__ import annotations

from flexibert.model.cost import ArchDims, param_blocks
from flexibert.space.design_space import ModelCard


def matching_prefix(query: ModelCard, source: ModelCard) -> int:
    """Number of leading layers with equal width and head count."""
    p = 0
    for hq, aq, hs, as_ in zip(query.h, query.a, source.h, source.a):
        if (hq, aq) != (hs, as_):
            break
        p += 1
    return p


def transfer_plan(query: ModelCard, source: ModelCard) -> list[str]:
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
    return plan


def overlap(query: ModelCard, source: ModelCard, dims: ArchDims = ArchDims()) -> float:
    """Transferred parameters / all embedding and encoder parameters of the query."""
    blocks = param_blocks(query, dims)
    moved = sum(blocks[name] for name in transfer_plan(query, source))
    return moved / sum(blocks.values())
