"""The FlexiBERT encoder as ``transformers`` classes, plus the torch-free cost and overlap of a card.

The classes load on first use (``from flexibert.model import FlexiBertModel``), so the torch-free
modules here (``cost``, ``overlap``) cost no torch start-up. :func:`register_auto_classes` puts them
in the ``Auto*`` factories, the Hugging Face convention for a third-party model; ``import flexibert``
calls it as soon as ``transformers`` defines the factories, so after ``import flexibert``,
``AutoModel.from_pretrained(<a FlexiBERT checkpoint>)`` works without remote code.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Each class this package exports, by the module that defines it.
_CLASSES = {
    "FlexiBertConfig": "configuration_flexibert",
    "FlexiBertForMaskedLM": "modeling_flexibert",
    "FlexiBertForSequenceClassification": "modeling_flexibert",
    "FlexiBertModel": "modeling_flexibert",
    "FlexiBertPreTrainedModel": "modeling_flexibert",
}

__all__ = [*_CLASSES, "register_auto_classes"]


def __getattr__(name: str) -> Any:
    """Load a class on first use: the modelling module imports torch."""
    if name not in _CLASSES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_CLASSES[name]}"), name)


def register_auto_classes() -> None:
    """Register the config and the three model heads with the ``transformers`` Auto factories."""
    from transformers import (
        AutoConfig,
        AutoModel,
        AutoModelForMaskedLM,
        AutoModelForSequenceClassification,
    )

    from flexibert.model.configuration_flexibert import FlexiBertConfig
    from flexibert.model.modeling_flexibert import (
        FlexiBertForMaskedLM,
        FlexiBertForSequenceClassification,
        FlexiBertModel,
    )

    AutoConfig.register(FlexiBertConfig.model_type, FlexiBertConfig, exist_ok=True)
    AutoModel.register(FlexiBertConfig, FlexiBertModel, exist_ok=True)
    AutoModelForSequenceClassification.register(FlexiBertConfig, FlexiBertForSequenceClassification, exist_ok=True)
    AutoModelForMaskedLM.register(FlexiBertConfig, FlexiBertForMaskedLM, exist_ok=True)
