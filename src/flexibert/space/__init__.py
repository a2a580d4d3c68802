"""Stage 1, torch-free: design spaces and model cards, block graphs and fingerprints, the WL kernel,
Transformer2vec, the space library on disk, and the seed cards."""

from flexibert.space.design_space import DesignSpace, ModelCard

__all__ = ["DesignSpace", "ModelCard"]
