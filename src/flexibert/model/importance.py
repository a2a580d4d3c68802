"""How much each feed-forward neuron of a source model matters, so that a narrower child keeps the best ones.

A child whose FFN is narrower than its source layer's inherits a subset of the source's
intermediate neurons (``flexibert.model.transfer``), as DynaBERT and MoEBERT do. Two scores:

- :func:`ffn_importance`, first-order Taylor: for each example, ``|sum over tokens of a * dL/da|``
  over the GELU activations ``a`` of a layer's intermediate dense layer, summed over examples.
  Per example, this is the estimated change of the task loss when the neuron is silenced
  (Molchanov et al. 2017); an element-wise ``|a * dL/da|`` would also count contributions that
  cancel within a sentence. It needs the task's data and a loss.
- :func:`magnitude_importance`: the L2 norm of the neuron's incoming and outgoing weights, free of data.

:func:`inheritance_scores` picks one by a trial's ``ffn_select``. The loss is the task loss through
the source's own classification head when it has one for the task; a source without one (an
imported or MLM-pretrained seed) gets a linear probe fitted on its pooled output over the same
batches, the head a fine-tuning would first learn, rather than a random head whose gradients
rank neurons by noise.
"""

from __future__ import annotations

from typing import Callable, Iterable, Sequence

import torch
import torch.nn.functional as F

from flexibert._common import FlexiBertError
from flexibert.model.modeling_flexibert import (
    FlexiBertForSequenceClassification,
    FlexiBertPreTrainedModel,
)
from flexibert.model.overlap import check_ffn_select

Batch = dict[str, torch.Tensor]
LossFn = Callable[[FlexiBertPreTrainedModel, Batch], torch.Tensor]


def _layers(model: FlexiBertPreTrainedModel) -> torch.nn.ModuleList:
    return model.base_model.encoder.layer


def ffn_importance(model: FlexiBertPreTrainedModel, batches: Iterable[Batch],
                   loss_fn: LossFn) -> dict[int, torch.Tensor]:
    """Taylor importance of every intermediate neuron, by layer index (float32 on the CPU).

    ``loss_fn(model, batch)`` is the loss whose sensitivity counts. Padding positions add nothing:
    no pooled output reads them and attention masks them as keys, so their gradient is zero.
    The model's parameter gradients are left untouched.
    """
    layers = _layers(model)
    scores = {j: torch.zeros(layer.intermediate.dense.out_features) for j, layer in enumerate(layers)}
    acts: dict[int, torch.Tensor] = {}

    def keep(j: int):
        def hook(_module: torch.nn.Module, _inputs: tuple, output: torch.Tensor) -> None:
            acts[j] = output

        return hook

    handles = [layer.intermediate.register_forward_hook(keep(j)) for j, layer in enumerate(layers)]
    was_training = model.training
    model.eval()  # no dropout: the scores follow the model, not a mask
    device = next(model.parameters()).device
    try:
        with torch.enable_grad():
            for batch in batches:
                acts.clear()
                loss = loss_fn(model, {k: v.to(device) for k, v in batch.items()})
                order = sorted(acts)
                grads = torch.autograd.grad(loss, [acts[j] for j in order])
                for j, grad in zip(order, grads):
                    scores[j] += (acts[j] * grad).sum(dim=1).abs().sum(dim=0).detach().float().cpu()
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return scores


def magnitude_importance(model: FlexiBertPreTrainedModel) -> dict[int, torch.Tensor]:
    """Per layer, the L2 norm of each intermediate neuron's input row and output column together."""
    with torch.no_grad():
        return {
            j: (layer.intermediate.dense.weight.pow(2).sum(dim=1) + layer.output.dense.weight.pow(2).sum(dim=0))
            .sqrt().float().cpu()
            for j, layer in enumerate(_layers(model))
        }


def top_neurons(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of the ``k`` highest scores (ties: the earlier neuron), in increasing order, as the source has them."""
    if not 0 < k <= len(scores):
        raise FlexiBertError(f"cannot keep {k} of {len(scores)} neurons")
    return torch.sort(torch.argsort(scores, descending=True, stable=True)[:k]).values


def probe_loss(model: FlexiBertPreTrainedModel, batches: Sequence[Batch], num_labels: int) -> LossFn:
    """The task loss through a linear probe fitted (L-BFGS, small L2) on ``model``'s pooled output over ``batches``.

    For a source without a classification head for the task; ``num_labels == 1`` is regression (MSE).
    """
    base = model.base_model
    if base.pooler is None:
        raise FlexiBertError("a linear probe reads the pooled output, and this model has no pooler")
    device = next(model.parameters()).device
    with torch.no_grad():
        was_training = model.training
        model.eval()
        features = torch.cat([base(**_inputs(b, device)).pooler_output for b in batches]).float()
        model.train(was_training)
    labels = torch.cat([b["labels"] for b in batches]).to(device)
    probe = torch.nn.Linear(features.shape[1], num_labels).to(device)

    def task_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if num_labels == 1:
            return F.mse_loss(logits.squeeze(-1), y.to(logits.dtype))
        return F.cross_entropy(logits, y.long())

    opt = torch.optim.LBFGS(probe.parameters(), max_iter=200, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = task_loss(probe(features), labels) + 1e-3 * probe.weight.pow(2).sum()
        loss.backward()
        return loss

    with torch.enable_grad():
        opt.step(closure)
    probe.requires_grad_(False)
    return lambda m, batch: task_loss(probe(m.base_model(**_inputs(batch, device)).pooler_output), batch["labels"])


def _inputs(batch: Batch, device: torch.device) -> Batch:
    return {k: v.to(device) for k, v in batch.items() if k != "labels"}


def inheritance_scores(source: FlexiBertPreTrainedModel, ffn_select: str, batches: Sequence[Batch],
                       num_labels: int) -> dict[int, torch.Tensor] | None:
    """Neuron scores for ``ffn_select`` (None for ``first``): Taylor through the source's own classifier when it
    has one with ``num_labels`` outputs, else through a probe; or magnitude."""
    if check_ffn_select(ffn_select) == "first":
        return None
    if ffn_select == "magnitude":
        return magnitude_importance(source)
    if isinstance(source, FlexiBertForSequenceClassification) and source.config.num_labels == num_labels:
        return ffn_importance(source, batches, lambda m, batch: m(**batch).loss)
    return ffn_importance(source, batches, probe_loss(source, batches, num_labels))
