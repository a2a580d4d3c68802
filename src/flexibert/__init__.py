"""FlexiBERT: explore the design space of heterogeneous Transformer encoders.

The stages, in the one direction data flows: ``space`` -> ``model`` -> ``train`` -> ``search`` ->
``report``, then ``pipeline`` and ``cli`` on top. Importing the package registers the model with
the ``transformers`` Auto classes.
"""

import os

# Before torch loads (the model import below loads it): libgomp reads this once. Spinning OpenMP
# threads stalled training 10-20x when processes shared a 2-core machine; passive waiting was as
# fast alone. A value the user set is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from flexibert import model as _model  # noqa: E402, F401  (registers the Auto classes)
from flexibert._common import FlexiBertError  # noqa: E402
from flexibert.space import DesignSpace, ModelCard  # noqa: E402

__all__ = ["DesignSpace", "FlexiBertError", "ModelCard"]
__version__ = "0.1.0"
