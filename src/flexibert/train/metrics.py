"""The GLUE metrics, by name, computed with scikit-learn and SciPy (never reimplemented)."""

from __future__ import annotations

from typing import Callable

import numpy as np

from flexibert._common import FlexiBertError


def _accuracy(pred: np.ndarray, gold: np.ndarray) -> float:
    from sklearn.metrics import accuracy_score

    return float(accuracy_score(gold, pred))


def _f1(pred: np.ndarray, gold: np.ndarray) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(gold, pred, average="binary", zero_division=0.0))


def _mcc(pred: np.ndarray, gold: np.ndarray) -> float:
    from sklearn.metrics import matthews_corrcoef

    return float(matthews_corrcoef(gold, pred))


def _correlation(kind: str) -> Callable[[np.ndarray, np.ndarray], float]:
    def corr(pred: np.ndarray, gold: np.ndarray) -> float:
        from scipy import stats

        if np.ptp(pred) == 0 or np.ptp(gold) == 0:
            return 0.0  # undefined for a constant predictor; count it as no correlation
        fn = stats.pearsonr if kind == "pearson" else stats.spearmanr
        return float(fn(pred, gold)[0])

    return corr


METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "accuracy": _accuracy,
    "f1": _f1,
    "mcc": _mcc,
    "pearson": _correlation("pearson"),
    "spearman": _correlation("spearman"),
}


def compute(names: tuple[str, ...] | list[str], pred: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    """``{name: value}`` for predictions against gold labels (class ids, or floats for regression)."""
    pred, gold = np.asarray(pred), np.asarray(gold)
    if pred.shape != gold.shape or pred.size == 0:
        raise FlexiBertError(
            f"metrics need equal, non-empty prediction and label arrays, got {pred.shape} and {gold.shape}"
        )
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise FlexiBertError(f"unknown metric(s) {unknown}; expected some of {sorted(METRICS)}")
    return {n: METRICS[n](pred, gold) for n in names}
