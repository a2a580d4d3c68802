"""Acquisition functions: which unmeasured model to train next, given the surrogate's belief.

All score "higher is better". ``uncertainty`` is the study's pure exploration (max
sigma); ``ucb`` and ``ei`` trade exploration for finding the best model fast;
``random`` is the baseline every other one is measured against.
"""

from __future__ import annotations

import numpy as np

from flexibert._common import FlexiBertError

ACQUISITIONS: tuple[str, ...] = ("uncertainty", "ucb", "ei", "random")


def check_acquisition(name: str) -> str:
    if name not in ACQUISITIONS:
        raise FlexiBertError(f"unknown acquisition {name!r}; expected one of {list(ACQUISITIONS)}")
    return name


def expected_improvement(mean: np.ndarray, std: np.ndarray, best: float, xi: float = 0.0) -> np.ndarray:
    """E[max(f - best - xi, 0)] under the Gaussian posterior; exact at sigma = 0."""
    from scipy.stats import norm

    gain = mean - best - xi
    safe = np.where(std > 0, std, 1.0)
    z = gain / safe
    ei = gain * norm.cdf(z) + safe * norm.pdf(z)
    return np.where(std > 0, ei, np.maximum(gain, 0.0))


def score(name: str, mean: np.ndarray, std: np.ndarray, best: float, rng: np.random.Generator,
          beta: float = 2.0, xi: float = 0.0) -> np.ndarray:
    """Acquisition value per candidate, higher first."""
    check_acquisition(name)
    if name == "uncertainty":
        return np.asarray(std, dtype=float)
    if name == "ucb":
        return mean + beta * std
    if name == "ei":
        return expected_improvement(mean, std, best, xi)
    return rng.random(len(mean))


def order(name: str, mean: np.ndarray, std: np.ndarray, best: float, rng: np.random.Generator,
          beta: float = 2.0, xi: float = 0.0) -> np.ndarray:
    """Candidate positions sorted by acquisition, best first; ties keep their given order."""
    return np.argsort(-score(name, mean, std, best, rng, beta, xi), kind="stable")
