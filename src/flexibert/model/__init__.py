"""The FlexiBERT encoder as ``transformers`` classes, plus the torch-free cost and overlap of a card.

Importing this package registers the classes with the ``Auto*`` factories, the Hugging Face
convention for a third-party model: after ``import flexibert``,
``AutoModel.from_pretrained(<a FlexiBERT checkpoint>)`` works without remote code.
"""

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
    FlexiBertPreTrainedModel,
)

AutoConfig.register(FlexiBertConfig.model_type, FlexiBertConfig, exist_ok=True)
AutoModel.register(FlexiBertConfig, FlexiBertModel, exist_ok=True)
AutoModelForSequenceClassification.register(FlexiBertConfig, FlexiBertForSequenceClassification, exist_ok=True)
AutoModelForMaskedLM.register(FlexiBertConfig, FlexiBertForMaskedLM, exist_ok=True)

__all__ = [
    "FlexiBertConfig",
    "FlexiBertForMaskedLM",
    "FlexiBertForSequenceClassification",
    "FlexiBertModel",
    "FlexiBertPreTrainedModel",
]
