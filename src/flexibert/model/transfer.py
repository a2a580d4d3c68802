"""Weight transfer between two FlexiBERT models, applying the card-level plan of ``flexibert.model.overlap``.

Active learning warm-starts a query model from a trained neighbour. The plan comes
from the two cards alone; this module only executes it on real tensors and counts
what moved, so that the tests can check the count against ``overlap.transfer_plan``.
A query layer reads the source layer the plan maps it to; a narrower FFN takes the
rows of the intermediate dense layer and the columns of the output dense layer of
the neurons it keeps (the output bias and LayerNorm whole).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping

import torch

from flexibert._common import FlexiBertError
from flexibert.model.importance import top_neurons
from flexibert.model.modeling_flexibert import FlexiBertPreTrainedModel, parameter_block
from flexibert.model.overlap import transfer_plan

_LAYER_PREFIX = re.compile(r"^encoder\.layer\.\d+\.")


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


def _ffn_slice(name: str, value: torch.Tensor, neurons: torch.Tensor) -> torch.Tensor:
    """The kept neurons' part of a source FFN tensor: their rows going in, their columns coming out."""
    if ".intermediate." in name:
        return value[neurons]
    if name.endswith(".output.dense.weight"):
        return value[:, neurons]
    return value


def transfer_weights(query_model: torch.nn.Module, source_model: torch.nn.Module, layer_map: str = "bottom",
                     ffn_scores: Mapping[int, torch.Tensor] | None = None) -> TransferReport:
    """Copy into ``query_model`` every block that ``overlap.transfer_plan`` assigns from ``source_model``.

    Either model may carry a task head; heads and poolers are never copied. ``layer_map`` as in
    ``overlap.layer_pairs``. A query FFN narrower than its source layer's keeps the neurons that score
    highest in ``ffn_scores`` (one score per neuron, by source layer; see ``flexibert.model.importance``),
    in the source's order; without scores, the first ones.
    """
    query, source = _base(query_model, "query"), _base(source_model, "source")
    if query.config.arch_dims != source.config.arch_dims:
        raise FlexiBertError(
            "weight transfer: models differ outside their cards "
            f"({query.config.arch_dims} vs {source.config.arch_dims})"
        )
    q_card, s_card = query.config.card, source.config.card
    plan = transfer_plan(q_card, s_card, query.config.arch_dims, layer_map)
    source_layer = dict(plan.layers)
    neurons = {}
    for j in plan.pruned:
        m = source_layer[j]
        if ffn_scores is None:
            neurons[j] = torch.arange(q_card.f[j])
        elif m not in ffn_scores or ffn_scores[m].shape != (s_card.f[m],):
            raise FlexiBertError(f"weight transfer: no {s_card.f[m]} neuron scores for source layer {m}")
        else:
            neurons[j] = top_neurons(ffn_scores[m], q_card.f[j])
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
                if block == "embeddings":
                    src_name, value = name, src[name]
                else:
                    j = int(block.split(".")[1])
                    src_name = _LAYER_PREFIX.sub(f"encoder.layer.{source_layer[j]}.", name)
                    value = src[src_name]
                    if j in neurons and block.endswith(".ffn"):
                        value = _ffn_slice(name, value, neurons[j])
                if value.shape != param.shape:
                    raise FlexiBertError(
                        f"weight transfer: source tensor {src_name} gives shape {tuple(value.shape)}, "
                        f"the query's {name} needs {tuple(param.shape)}"
                    )
                param.copy_(value)
                moved += counted
                embeddings |= block == "embeddings"
    return TransferReport(blocks=plan.blocks, transferred=moved, total=total, embeddings=embeddings)
