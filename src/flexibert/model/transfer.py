"""Weight transfer between two FlexiBERT models, applying the card-level plan of ``flexibert.model.overlap``.

Active learning warm-starts a query model from a trained neighbour. The plan comes
from the two cards alone; this module only executes it on real tensors and counts
what moved, so that the tests can check the count against ``overlap.transfer_plan``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from flexibert._common import FlexiBertError
from flexibert.model.modeling_flexibert import FlexiBertPreTrainedModel, parameter_block
from flexibert.model.overlap import transfer_plan


@dataclass(frozen=True)
class TransferReport:
    """What moved: the query's blocks filled from the source, counted on the tensors themselves."""

    blocks: tuple[str, ...]
    transferred: int  # encoder-layer parameters copied
    total: int  # encoder-layer parameters of the query
    embeddings: bool  # the embeddings were copied too (they do not count towards the overlap)

    @property
    def fraction(self) -> float:
        """The overlap, as ``overlap.TransferPlan.fraction`` defines it."""
        return self.transferred / self.total


def _base(model: torch.nn.Module, role: str) -> FlexiBertPreTrainedModel:
    if not isinstance(model, FlexiBertPreTrainedModel):
        raise FlexiBertError(f"weight transfer: the {role} model is a {type(model).__name__}, not a FlexiBERT model")
    return model.base_model


def transfer_weights(query_model: torch.nn.Module, source_model: torch.nn.Module) -> TransferReport:
    """Copy into ``query_model`` every block that ``overlap.transfer_plan`` assigns from ``source_model``.

    Either model may carry a task head; heads and poolers are never copied.
    """
    query, source = _base(query_model, "query"), _base(source_model, "source")
    if query.config.arch_dims != source.config.arch_dims:
        raise FlexiBertError(
            "weight transfer: models differ outside their cards "
            f"({query.config.arch_dims} vs {source.config.arch_dims})"
        )
    plan = transfer_plan(query.config.card, source.config.card, query.config.arch_dims)
    wanted = set(plan.blocks)
    src = dict(source.named_parameters())
    moved = total = 0
    embeddings = False
    with torch.no_grad():
        for name, param in query.named_parameters():
            block = parameter_block(name)
            if block is None:
                continue
            counted = 0 if block == "embeddings" else param.numel()  # embeddings move, but are not overlap
            total += counted
            if block in wanted:
                if src[name].shape != param.shape:
                    raise FlexiBertError(
                        f"weight transfer: source tensor {name} has shape {tuple(src[name].shape)}, "
                        f"the query needs {tuple(param.shape)}"
                    )
                param.copy_(src[name])
                moved += counted
                embeddings |= block == "embeddings"
    return TransferReport(blocks=plan.blocks, transferred=moved, total=total, embeddings=embeddings)
