"""The GP surrogate that predicts a model's accuracy from its inputs, and its held-out quality.

Kernel, chosen by measurement on the study's 620 measured SST-2 accuracies (8-d
embeddings; random training subsets, the rest held out; mean Spearman of 5 splits):

=========================================  =====  =====  =====  =====  =====
kernel                                      5%     10%    20%    30%    50%
=========================================  =====  =====  =====  =====  =====
1.0 * RBF(1.0) fixed (2021: kernel=None)    0.26   0.29   0.35   0.40   const
RBF(1.0) tuned, no normalize_y              0.25   0.26   0.34   0.40   const
Matern 1/2, one length scale (chosen)       0.47   0.50   0.60   0.63   0.67
Matern 3/2, one length scale                0.46   0.49   0.59   0.62   0.66
Matern 5/2, one length scale                0.45   0.49   0.59   0.62
Matern 1/2, ARD                             0.38   0.42   0.55   0.61
Matern 3/2, ARD                             0.36   0.41   0.55   0.60
=========================================  =====  =====  =====  =====  =====

("const": the fit collapses to a constant prediction.) So: ``Constant x Matern(nu=1/2,
one length scale) + White``, ``normalize_y`` and optimiser restarts. ARD is worse at
every size (8 length scales over-fit a few hundred noisy points) and 5-20x slower;
the smoothness values tie within noise and the roughest wins by a hair. The white
term matters most: single-seed accuracies carry noise of the same size as the spread
between models. The table above is on the embedding alone; the search's inputs append
scaled card statistics (:mod:`flexibert.search.features`: 0.686 at 30%).
``bench/search.py`` re-measures both against the 2021 GP.

``predict`` returns the *latent* standard deviation (the white-noise variance
removed): the stop rule asks how well the mean accuracy is known, and the noise
floor of one measurement would otherwise keep it from ever firing.

The amplitude's lower bound is 0.25 of the trained values' variance, not 1e-2: with
10-20 noisy results the likelihood often prefers "all noise" (amplitude at 0.01-0.09,
length scale at its lower bound), whose latent sigma of ~0.2 std(y) let the stop rule
fire at ci = 0.005 with the best model still 1.3-2 points away. Measured on
random 10/15/20-model subsets of the 620 (20 each, ``ActiveLearner`` at ci = 0.005),
real and shuffled values: spurious stops fell from 11/120 to 0/120 on the search's
inputs and from 27/120 to 1/120 on the embedding alone; held-out Spearman at 10%
and 30% is unchanged to three decimals (fits there never go below 0.25).
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from flexibert._common import FlexiBertError

#: Kernel hyperparameter bounds, in units of the standardised target and of input distance.
#: The amplitude floor keeps the surrogate from calling everything noise (see above).
AMPLITUDE_BOUNDS = (0.25, 1e2)
LENGTH_SCALE_BOUNDS = (1e-2, 1e2)
NOISE_BOUNDS = (1e-4, 1e1)


@functools.lru_cache(maxsize=1)
def _blas_controller():
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()  # scans the loaded libraries: do it once, not per fit


def _one_blas_thread():
    """GP matrices here are a few hundred wide: BLAS threads cost more than they save
    (a 200-point fit with restarts: 0.5 s on one thread, 3-9 s on two busy cores)."""
    return _blas_controller().limit(limits=1, user_api="blas")


def check_xy(X: np.ndarray, y: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Validate at the boundary: a finite 2-d ``X`` and, if given, a finite 1-d ``y`` of the same length."""
    X = np.asarray(X, dtype=float)
    if X.ndim != 2 or X.shape[1] == 0:
        raise FlexiBertError(f"surrogate: X must be a 2-d array (models x features), got shape {X.shape}")
    if not np.isfinite(X).all():
        raise FlexiBertError("surrogate: X contains NaN or infinite values")
    if y is None:
        return X, None
    y = np.asarray(y, dtype=float)
    if y.ndim != 1 or len(y) != len(X):
        raise FlexiBertError(f"surrogate: y must be 1-d with one value per row of X ({len(X)}), got shape {y.shape}")
    if not np.isfinite(y).all():
        raise FlexiBertError("surrogate: y contains NaN or infinite values")
    if len(y) < 2:
        raise FlexiBertError(f"surrogate: need at least 2 measured models to fit, got {len(y)}")
    return X, y


class GPSurrogate:
    """Gaussian process regression with the measured kernel above.

    ``theta`` (log-hyperparameters, as ``theta_`` of a fitted surrogate) fixes the kernel:
    ``fit`` then only conditions on the data, which is cheap and deterministic. Without
    it ``fit`` maximises the marginal likelihood from the default start plus ``n_restarts``
    random starts drawn with ``random_state``.
    """

    def __init__(self, nu: float = 0.5, n_restarts: int = 3, random_state: int = 0,
                 theta: Sequence[float] | None = None, chunk_size: int = 4096) -> None:
        if nu not in (0.5, 1.5, 2.5, np.inf):
            raise FlexiBertError(f"surrogate: Matern nu must be 0.5, 1.5, 2.5 or inf, got {nu}")
        if n_restarts < 1:
            raise FlexiBertError(f"surrogate: n_restarts must be >= 1, got {n_restarts}")
        self.nu, self.n_restarts, self.random_state = nu, n_restarts, random_state
        self.theta = None if theta is None else np.asarray(theta, dtype=float)
        self.chunk_size = chunk_size

    def _kernel(self):
        from sklearn.gaussian_process.kernels import ConstantKernel, Matern, WhiteKernel

        kernel = (ConstantKernel(1.0, AMPLITUDE_BOUNDS) * Matern(1.0, LENGTH_SCALE_BOUNDS, nu=self.nu)
                  + WhiteKernel(0.1, NOISE_BOUNDS))
        if self.theta is not None:
            if self.theta.shape != kernel.theta.shape:
                raise FlexiBertError(f"surrogate: theta needs {kernel.theta.size} values, got {self.theta.size}")
            kernel.theta = self.theta
        return kernel

    def fit(self, X: np.ndarray, y: np.ndarray) -> "GPSurrogate":
        from sklearn.gaussian_process import GaussianProcessRegressor

        X, y = check_xy(X, y)
        fixed = self.theta is not None
        self.gp_ = GaussianProcessRegressor(
            kernel=self._kernel(), normalize_y=True, optimizer=None if fixed else "fmin_l_bfgs_b",
            n_restarts_optimizer=0 if fixed else self.n_restarts, random_state=self.random_state)
        with warnings.catch_warnings(), _one_blas_thread():
            # A hyperparameter at its bound is a fact about the data, not an error.
            warnings.simplefilter("ignore")
            self.gp_.fit(X, y)
        # sklearn standardises y with np.std (ddof 0) and treats a zero spread as 1.
        scale = float(np.std(y)) or 1.0
        self.noise_ = float(self.gp_.kernel_.k2.noise_level) * scale**2
        self.n_features_in_ = X.shape[1]
        return self

    @property
    def theta_(self) -> list[float]:
        """Fitted log-hyperparameters (amplitude, length scale, noise): enough to restore the kernel."""
        return [float(t) for t in self.gp_.kernel_.theta]

    @property
    def kernel_(self) -> str:
        return str(self.gp_.kernel_)

    def clone(self) -> "GPSurrogate":
        """An unfitted copy with the same settings."""
        return GPSurrogate(self.nu, self.n_restarts, self.random_state, self.theta, self.chunk_size)

    def frozen(self) -> "GPSurrogate":
        """An unfitted copy whose kernel is fixed at this fit's hyperparameters."""
        return GPSurrogate(self.nu, self.n_restarts, self.random_state, self.theta_, self.chunk_size)

    def predict(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and latent standard deviation, in chunks (330k points at once need ~8 GB)."""
        if not hasattr(self, "gp_"):
            raise FlexiBertError("surrogate: predict called before fit")
        X, _ = check_xy(X)
        if X.shape[1] != self.n_features_in_:
            raise FlexiBertError(f"surrogate: fitted on {self.n_features_in_} features, got {X.shape[1]}")
        mean = np.empty(len(X))
        std = np.empty(len(X))
        for start in range(0, len(X), self.chunk_size):
            part = slice(start, start + self.chunk_size)
            with _one_blas_thread():
                m, s = self.gp_.predict(X[part], return_std=True)
            mean[part] = m
            std[part] = np.sqrt(np.maximum(s**2 - self.noise_, 0.0))
        return mean, std


@dataclass(frozen=True)
class HeldOut:
    """Quality of predictions on points the surrogate did not see (k-fold CV)."""

    n: int
    folds: int
    spearman: float
    kendall: float
    mae: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def rank_quality(pred: np.ndarray, true: np.ndarray) -> tuple[float, float, float]:
    """Spearman, Kendall tau and MAE; a constant prediction ranks nothing and scores 0."""
    from scipy.stats import kendalltau, spearmanr

    mae = float(np.mean(np.abs(pred - true)))
    if np.ptp(pred) == 0 or np.ptp(true) == 0:
        return 0.0, 0.0, mae
    return float(spearmanr(pred, true)[0]), float(kendalltau(pred, true)[0]), mae


def cross_validate(surrogate: GPSurrogate, X: np.ndarray, y: np.ndarray, folds: int = 5, seed: int = 0) -> HeldOut:
    """k-fold CV of ``surrogate``'s settings; pooled out-of-fold predictions are scored once.

    Unfitted copies of ``surrogate`` are fitted. Pass ``fitted.frozen()`` to reuse fitted
    hyperparameters: k cheap solves instead of k optimisations. The three kernel scalars
    then saw the held-out points, a negligible leak next to the n values that did not.
    """
    X, y = check_xy(X, y)
    folds = min(folds, len(y))
    if len(y) < 3 or folds < 2:
        raise FlexiBertError(f"cross-validation needs at least 3 points and 2 folds, got {len(y)} and {folds}")
    order = np.random.default_rng(seed).permutation(len(y))
    pred = np.empty(len(y))
    for part in np.array_split(order, folds):
        train = np.setdiff1d(order, part)
        pred[part] = surrogate.clone().fit(X[train], y[train]).predict(X[part])[0]
    rho, tau, mae = rank_quality(pred, y)
    return HeldOut(n=len(y), folds=folds, spearman=rho, kendall=tau, mae=mae)
