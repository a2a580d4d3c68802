"""Word embeddings for a new model, from a pretrained encoder's table projected to the model's width.

Why: a small model trained on the task's text alone must learn what its words mean from a few
thousand sentences; a pretrained encoder's input table already holds that, and its leading
principal components keep most of it at any smaller width. The model must use the encoder's
tokenizer, since rows are token ids.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from flexibert._common import FlexiBertError
from flexibert.model.checkpoint import WEIGHTS

WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"  # under bert., flexibert. or no prefix


def read_word_embeddings(checkpoint: str | Path) -> torch.Tensor:
    """The (vocab, width) input table of a BERT-family checkpoint directory (safetensors only)."""
    file = Path(checkpoint) / WEIGHTS
    if not file.is_file():
        raise FlexiBertError(f"no {WEIGHTS} in checkpoint {checkpoint}")
    try:
        tensors = load_file(str(file))
    except (SafetensorError, OSError) as e:
        raise FlexiBertError(f"corrupt safetensors file {file}: {e}") from None
    names = [n for n in tensors if n == WORD_EMBEDDINGS or n.endswith("." + WORD_EMBEDDINGS)]
    if len(names) != 1:
        raise FlexiBertError(f"checkpoint {checkpoint}: expected one {WORD_EMBEDDINGS} tensor, found {names}")
    return tensors[names[0]].float()


def project_word_embeddings(table: torch.Tensor, width: int) -> torch.Tensor:
    """``table`` centred and projected on its ``width`` leading principal components, at the table's scale.

    A width beyond the table's keeps all of its components and leaves the extra columns at zero.
    Computed in float64 with each component's sign fixed (largest loading positive), so that the seeds
    are the same whatever the thread count: float32 components of nearly equal variance rotate with it.
    """
    centred = (table - table.mean(0)).double()
    _, _, vh = torch.linalg.svd(centred, full_matrices=False)
    k = min(width, vh.shape[0])
    vh = vh[:k]
    vh = vh * torch.sign(vh.gather(1, vh.abs().argmax(1, keepdim=True)))
    out = torch.zeros(table.shape[0], width, dtype=torch.float64)
    out[:, :k] = centred @ vh.T
    return (out * (table.double().std() / out[:, :k].std())).float()


def init_word_embeddings(model, table: torch.Tensor) -> None:
    """Start ``model``'s word embeddings from ``table`` projected to the model's first-layer width."""
    weight = model.get_input_embeddings().weight
    if weight.shape[0] != table.shape[0]:
        raise FlexiBertError(
            f"pretrained word embeddings have {table.shape[0]} rows, but the model's vocabulary has "
            f"{weight.shape[0]} tokens; the run must use that encoder's tokenizer"
        )
    with torch.no_grad():
        weight.copy_(project_word_embeddings(table, weight.shape[1]).to(weight.dtype))
