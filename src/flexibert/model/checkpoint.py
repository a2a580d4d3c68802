"""Save and load FlexiBERT checkpoints safely: safetensors only, validated before loading.

``from_pretrained`` alone would warn and re-initialise tensors whose shapes do not
fit, or unpickle a ``pytorch_model.bin``; here every problem with a checkpoint
directory (no config, a config whose card is invalid or outside a space, missing or
corrupt weights, tensors that do not fit the card) is one ``FlexiBertError``.
A checkpoint directory (model, and the tokenizer when there is one) appears in one
rename, so a killed run never leaves half of one. :func:`save_checkpoint` and
:func:`load_checkpoint` are the only pair that writes and reads them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open

from flexibert._common import FlexiBertError, atomic_dir, read_json
from flexibert.model.configuration_flexibert import FlexiBertConfig
from flexibert.model.modeling_flexibert import (
    FlexiBertForMaskedLM,
    FlexiBertForSequenceClassification,
    FlexiBertModel,
    FlexiBertPreTrainedModel,
    parameter_block,
)
from flexibert.space.design_space import DesignSpace

CONFIG = "config.json"
WEIGHTS = "model.safetensors"
TOKENIZER = "tokenizer.json"  # present when a tokenizer was saved beside the model
HEADS = {"classifier", "lm_head"}  # top-level modules of the task heads
HEAD_CLASSES: dict[str, type[FlexiBertPreTrainedModel]] = {
    "classification": FlexiBertForSequenceClassification,
    "mlm": FlexiBertForMaskedLM,
    "base": FlexiBertModel,
}


def save_checkpoint(model: FlexiBertPreTrainedModel, path: str | Path, tokenizer: Any = None) -> Path:
    """Model (config.json + model.safetensors) and, when given, its tokenizer into a new directory, atomically."""
    with atomic_dir(path) as tmp:
        model.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
    return Path(path)


def load_checkpoint(path: str | Path, head: str = "classification") -> tuple[FlexiBertPreTrainedModel, Any]:
    """``(model in eval mode, tokenizer or None)`` of a checkpoint, validated against its card first.

    ``head``: ``classification``, ``mlm`` or ``base``. Tensors of another head (e.g. ``lm_head``
    when loading a classifier) are ignored and a missing head or pooler is freshly initialised,
    as ``from_pretrained`` does.
    """
    if head not in HEAD_CLASSES:
        raise FlexiBertError(f"unknown checkpoint head {head!r}; expected one of {sorted(HEAD_CLASSES)}")
    model_class = HEAD_CLASSES[head]
    path = Path(path)
    config = load_config(path)
    weights = path / WEIGHTS
    if not weights.is_file() and any(path.glob("*.bin")):
        raise FlexiBertError(f"{path} has only pickled weights (*.bin); FlexiBERT loads safetensors only")
    shapes = tensor_shapes(weights)
    with torch.device("meta"):
        skeleton = model_class(config)
    check_weights(skeleton, shapes, weights)
    model = model_class.from_pretrained(path, config=config, use_safetensors=True).eval()
    tokenizer = load_saved_tokenizer(path) if (path / TOKENIZER).is_file() else None
    return model, tokenizer


def load_saved_tokenizer(path: str | Path) -> Any:
    """The tokenizer saved in a directory, as the class its ``tokenizer_config.json`` names:
    ``AutoTokenizer`` would also read a checkpoint's ``config.json`` and warn about its (FlexiBERT) model type."""
    import transformers

    path = Path(path)
    try:
        name = json.loads((path / "tokenizer_config.json").read_text()).get("tokenizer_class")
    except (OSError, ValueError, AttributeError):
        name = None
    cls = getattr(transformers, name, None) if isinstance(name, str) else None
    try:
        return (cls or transformers.AutoTokenizer).from_pretrained(str(path))
    except (OSError, ValueError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise FlexiBertError(f"cannot load tokenizer {path}: {first}") from None


def load_config(path: str | Path, space: DesignSpace | None = None) -> FlexiBertConfig:
    """The checkpoint's config; with ``space``, its card must lie in that space."""
    file = Path(path) / CONFIG
    data = read_json(file, f"no {CONFIG} in checkpoint directory {path}")
    if not isinstance(data, dict) or data.get("model_type") != FlexiBertConfig.model_type:
        got = data.get("model_type") if isinstance(data, dict) else type(data).__name__
        raise FlexiBertError(f"{file}: model_type is {got!r}, expected {FlexiBertConfig.model_type!r}")
    try:
        config = FlexiBertConfig.from_dict(data)
    except FlexiBertError as e:
        raise FlexiBertError(f"{file}: {e}") from None
    except (TypeError, ValueError, AttributeError) as e:
        raise FlexiBertError(f"{file}: invalid config: {e}") from None
    if space is not None:
        space.validate(config.card)
    return config


def tensor_shapes(file: str | Path) -> dict[str, tuple[int, ...]]:
    """Names and shapes from a safetensors header, without reading the tensors."""
    file = Path(file)
    if not file.is_file():
        raise FlexiBertError(f"weights file not found: {file}")
    try:
        with safe_open(str(file), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise FlexiBertError(f"corrupt safetensors file {file}: {e}") from None


def check_weights(model: FlexiBertPreTrainedModel, shapes: dict[str, tuple[int, ...]], file: str | Path) -> None:
    """Raise unless the tensors fit ``model``: every embedding/encoder tensor present with its shape,
    no encoder tensor the card lacks, and any head or pooler tensor of the right shape.

    Tensors of other heads are allowed (a classifier may start from a masked-LM checkpoint).
    """
    prefix = f"{model.base_model_prefix}."

    def canonical(name: str) -> str:  # base-model checkpoints store names without the prefix
        return name if name.startswith(prefix) or name.split(".", 1)[0] in HEADS else prefix + name

    stored = {canonical(k): k for k in shapes}
    expected = {canonical(k): tuple(v.shape) for k, v in model.state_dict().items()}
    for name, key in stored.items():
        if name in expected and shapes[key] != expected[name]:
            raise FlexiBertError(
                f"{file}: tensor {key} has shape {list(shapes[key])} but the card needs {list(expected[name])}"
            )
        if name not in expected and parameter_block(name) is not None:
            raise FlexiBertError(f"{file}: tensor {key} has no place in the card {model.config.card}")
    for name in expected:
        if name not in stored and parameter_block(name) is not None:
            raise FlexiBertError(f"{file}: tensor {name} of the card {model.config.card} is missing")
