"""Weight transfer between two FlexiBERT models, applying the card-level plan of ``flexibert.model.overlap``.

Active learning warm-starts a query model from a trained neighbour. The plan comes
from the two cards alone; this module only executes it on real tensors and counts
what moved, so that the tests can check the count against ``overlap.overlap``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from flexibert._common import FlexiBertError
from flexibert.model.modeling_flexibert import FlexiBertPreTrainedModel, parameter_block
from flexibert.model.overlap import transfer_plan


@dataclass(frozen=True)
class TransferReport:
    """What moved: the query's blocks filled from the source, and their parameter counts."""

    blocks: tuple[str, ...]
    transferred: int  # parameters copied
    total: int  # embedding + encoder parameters of the query

    @property
    def fraction(self) -> float:
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
    plan = transfer_plan(query.config.card, source.config.card)
    wanted = set(plan)
    src = dict(source.named_parameters())
    moved = total = 0
    with torch.no_grad():
        for name, param in query.named_parameters():
            block = parameter_block(name)
            if block is None:
                continue
            total += param.numel()
            if block in wanted:
                if src[name].shape != param.shape:
                    raise FlexiBertError(
                        f"weight transfer: source tensor {name} has shape {tuple(src[name].shape)}, "
                        f"the query needs {tuple(param.shape)}"
                    )
                param.copy_(src[name])
                moved += param.numel()
    return TransferReport(blocks=tuple(plan), transferred=moved, total=total)
