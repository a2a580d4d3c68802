"""FlexiBERT: explore the design space of heterogeneous Transformer encoders.

The stages, in the one direction data flows: ``space`` -> ``model`` -> ``train`` -> ``search`` ->
``report``, then ``pipeline`` and ``cli`` on top. Importing the package registers the model with
the ``transformers`` Auto classes.
"""

from flexibert import model as _model  # noqa: F401  (registers the Auto classes)
from flexibert._common import FlexiBertError
from flexibert.space import DesignSpace, ModelCard

__all__ = ["DesignSpace", "FlexiBertError", "ModelCard"]
__version__ = "0.1.0"
