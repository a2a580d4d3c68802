"""FlexiBERT: explore the design space of heterogeneous Transformer encoders."""

from flexibert.errors import FlexiBertError
from flexibert.space import DesignSpace, ModelCard

__all__ = ["DesignSpace", "FlexiBertError", "ModelCard"]
__version__ = "0.1.0"
