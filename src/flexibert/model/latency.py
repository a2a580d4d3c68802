"""Inference latency of a card on this machine.

Measuring every card is out of the question (a batch-32 forward of a large card takes a
second), so :func:`calibrate` times a small sample that spans the space's FLOPs and fits a
:class:`LatencyModel`, a non-negative linear model on cheap per-card features, that predicts
the rest. Its leave-one-out error on the sample says how far to trust it. A fitted model is
tied to one :class:`LatencySetup` (batch, sequence length, threads, embedding sizes) and to
the machine that measured it; save it as JSON to reuse it on the same machine.

Typical use::

    setup = LatencySetup(batch=1, threads=2)
    model = calibrate(list(space), sample_size=16, setup=setup, seed=0)
    model.save("latency-b1.json")
    ms = model.predict(cards)
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from flexibert._common import FlexiBertError, positive_number, read_json, write_json
from flexibert.model.cost import POSITION_SCHEMES, ArchDims, flops
from flexibert.space.design_space import ModelCard

FORMAT = "flexibert-latency-model/1"
# Per-card features, all growing with the card, so non-negative weights keep predictions monotone:
# fixed cost (embeddings, pooler, Python), per-layer kernel launches, attention-score elements
# (softmax, bias and relative-position gather are memory-bound, and scale with heads, not width),
# matrix FLOPs, and feed-forward activation elements (GELU and the bias copy of ``addmm`` are
# memory-bound: about 40% of BERT-Tiny's batch-32 forward in a profile on this machine).
FEATURES: tuple[str, ...] = ("const", "layers", "score_elements_M", "gflops", "ffn_elements_M")
MIN_MEASURED = len(FEATURES) + 2  # cards to fit the model and still hold one out


@dataclass(frozen=True)
class LatencySetup:
    """What one latency figure means: a classifier's forward pass at this batch and sequence
    length on ``threads`` CPU threads, the median of ``repeats`` timings after ``warmup``."""

    batch: int = 1
    seq_len: int = 128
    threads: int = 2
    dims: ArchDims = ArchDims()
    warmup: int = 2
    repeats: int = 5

    def __post_init__(self) -> None:
        for name in ("batch", "seq_len", "threads", "repeats"):
            positive_number(f"latency setup: {name}", getattr(self, name), int)
        if not isinstance(self.warmup, int) or isinstance(self.warmup, bool) or self.warmup < 0:
            raise FlexiBertError(f"latency setup: warmup must be a non-negative integer, got {self.warmup!r}")
        if self.dims.position_embedding_type not in POSITION_SCHEMES:
            raise FlexiBertError(
                f"latency setup: position_embedding_type {self.dims.position_embedding_type!r} is not one of "
                f"{list(POSITION_SCHEMES)}"
            )
        if self.dims.position_embedding_type == "absolute" and self.seq_len > self.dims.max_position_embeddings:
            raise FlexiBertError(
                f"latency setup: seq_len {self.seq_len} exceeds max_position_embeddings "
                f"{self.dims.max_position_embeddings}"
            )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LatencySetup":
        return cls(**{**d, "dims": ArchDims(**d["dims"])})


def timing_model(card: ModelCard, dims: ArchDims):
    """A two-label classifier of ``card`` in eval mode: what a latency figure times."""
    from flexibert.model.configuration_flexibert import FlexiBertConfig
    from flexibert.model.modeling_flexibert import FlexiBertForSequenceClassification

    config = FlexiBertConfig.from_card(card, num_labels=2, **asdict(dims))
    return FlexiBertForSequenceClassification(config).eval()


def time_forward(models: Sequence, setup: LatencySetup, seed: int = 0) -> list[float]:
    """Median forward-pass milliseconds of each model on random tokens of ``setup``'s shape.

    The models are timed round robin, one forward each per round, so that a change in the
    machine's load during the run falls on all of them alike instead of on a few.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, setup.dims.vocab_size, (setup.batch, setup.seq_len), generator=gen)
    mask = torch.ones_like(ids)
    times: list[list[float]] = [[] for _ in models]
    previous = torch.get_num_threads()
    torch.set_num_threads(setup.threads)
    try:
        with torch.inference_mode():
            for r in range(setup.warmup + setup.repeats):
                for model, t in zip(models, times):
                    start = time.perf_counter()
                    model(input_ids=ids, attention_mask=mask)
                    if r >= setup.warmup:
                        t.append((time.perf_counter() - start) * 1e3)
    finally:
        torch.set_num_threads(previous)
    return [statistics.median(t) for t in times]


def measure_latencies(cards: Sequence[ModelCard], setup: LatencySetup, seed: int = 0) -> list[float]:
    """Median forward-pass milliseconds of each card's classifier in eval mode, timed together
    (see :func:`time_forward`). Random weights: values do not change the time. All the models
    are held at once, each with its vocab x h_0 embedding table."""
    import torch

    torch.manual_seed(seed)
    return time_forward([timing_model(card, setup.dims) for card in cards], setup, seed)


def measure_latency(card: ModelCard, setup: LatencySetup = LatencySetup()) -> float:
    """Median forward-pass milliseconds of one card under ``setup``."""
    return measure_latencies([card], setup)[0]


def checkpoint_latency(checkpoint: str | Path, threads: int, batches: Sequence[int] = (1, 32)) -> dict[str, float]:
    """A saved model's own latency on this machine, measured (not predicted) at each batch size, sequence 128:
    ``{"batch_1": ms, ...}``."""
    from flexibert.model.checkpoint import load_config

    cfg = load_config(checkpoint)
    return {f"batch_{b}": round(measure_latency(cfg.card, LatencySetup(batch=b, threads=threads, dims=cfg.arch_dims)),
                                3) for b in batches}


def features(cards: Sequence[ModelCard], setup: LatencySetup) -> np.ndarray:
    """The :data:`FEATURES` of each card under ``setup`` (rows: cards); costs one ``cost.flops`` per card."""
    b, n, dims = setup.batch, setup.seq_len, setup.dims
    scores, tokens = b * n * n / 1e6, b * n / 1e6
    return np.array(
        [(1.0, c.l, scores * sum(c.a), b * flops(c, n, dims) / 1e9, tokens * sum(c.f)) for c in cards], dtype=float
    ).reshape(len(cards), len(FEATURES))


def _nnls(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Non-negative weights minimising the squared *relative* error (weights 1/y^2)."""
    from sklearn.linear_model import LinearRegression

    reg = LinearRegression(fit_intercept=False, positive=True).fit(x, y, sample_weight=1.0 / y**2)
    return reg.coef_


@dataclass(frozen=True)
class HeldOutError:
    """Leave-one-out relative error |predicted - measured| / measured over the fitted sample."""

    median: float
    max: float
    n: int


class LatencyModel:
    """Predicted milliseconds of a card under one :class:`LatencySetup`, in the scikit-learn shape:
    ``LatencyModel(setup).fit(cards, measured_ms).predict(more_cards)``."""

    def __init__(self, setup: LatencySetup = LatencySetup()):
        self.setup = setup

    def fit(self, cards: Sequence[ModelCard], measured_ms: Sequence[float]) -> "LatencyModel":
        """Fit the weights on all of ``cards`` and the held-out error by leaving each one out in turn."""
        y = np.asarray(measured_ms, dtype=float)
        if y.shape != (len(cards),):
            raise FlexiBertError(f"latency model: {len(cards)} cards but {y.size} measurements")
        if not np.all(np.isfinite(y) & (y > 0)):
            raise FlexiBertError("latency model: measurements must be positive, finite milliseconds")
        if len(cards) < MIN_MEASURED:
            raise FlexiBertError(
                f"latency model: at least {MIN_MEASURED} measured cards are needed to fit and hold one out, "
                f"got {len(cards)}"
            )
        x = features(cards, self.setup)
        self.coef_ = _nnls(x, y)
        rel = []
        for i in range(len(y)):
            keep = np.arange(len(y)) != i
            rel.append(abs(float(x[i] @ _nnls(x[keep], y[keep])) - y[i]) / y[i])
        self.held_out_error_ = HeldOutError(median=float(np.median(rel)), max=float(np.max(rel)), n=len(rel))
        self.samples_ = [(card, float(ms)) for card, ms in zip(cards, y)]
        self.machine_ = _machine()
        return self

    def predict(self, cards: Sequence[ModelCard]) -> np.ndarray:
        """Predicted milliseconds of each card."""
        if not hasattr(self, "coef_"):
            raise FlexiBertError("latency model: fit or load it before predicting")
        return features(cards, self.setup) @ self.coef_

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "setup": self.setup.to_dict(),
            "machine": self.machine_,
            "features": list(FEATURES),
            "coef": [float(c) for c in self.coef_],
            "held_out_error": asdict(self.held_out_error_),
            "samples": [{"card": card.to_dict(), "ms": ms} for card, ms in self.samples_],
        }

    def save(self, path: str | Path) -> Path:
        """Write the fitted model as JSON (atomically)."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> "LatencyModel":
        """A model saved by :meth:`save`; only meaningful on the machine that measured it (see ``machine_``)."""
        d = read_json(path, f"latency model not found: {path}")
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise FlexiBertError(f"{path} is not a FlexiBERT latency model (expected format {FORMAT!r})")
        if d.get("features") != list(FEATURES) or len(d.get("coef", ())) != len(FEATURES):
            raise FlexiBertError(f"{path}: latency model features {d.get('features')} differ from {list(FEATURES)}")
        try:
            model = cls(LatencySetup.from_dict(d["setup"]))
            model.coef_ = np.asarray(d["coef"], dtype=float)
            model.held_out_error_ = HeldOutError(**d["held_out_error"])
            model.samples_ = [(ModelCard.from_dict(s["card"]), float(s["ms"])) for s in d["samples"]]
            model.machine_ = str(d["machine"])
        except (KeyError, TypeError) as e:
            raise FlexiBertError(f"{path}: malformed latency model ({type(e).__name__}: {e})") from None
        return model


def _machine() -> str:
    """What measured: latencies move with the CPU and torch build, so a saved model names them."""
    import torch

    return f"{platform.node()} {platform.machine()} {os.cpu_count()} CPUs, torch {torch.__version__}"


def sample_cards(cards: Sequence[ModelCard], size: int, setup: LatencySetup, seed: int) -> list[ModelCard]:
    """``size`` cards spanning the FLOPs range: the cheapest, the dearest, and one drawn at random
    from each of ``size - 2`` equal-count FLOPs bins in between (deterministic in ``seed``)."""
    positive_number("latency sample size", size, int)
    if size > len(cards):
        raise FlexiBertError(f"latency sample size {size} exceeds the {len(cards)} cards given")
    order = np.argsort(features(cards, setup)[:, FEATURES.index("gflops")], kind="stable")
    ranks = [0, len(order) - 1][:size]
    rng = np.random.default_rng(seed)
    if size > 2:
        ranks += [int(rng.choice(chunk)) for chunk in np.array_split(np.arange(1, len(order) - 1), size - 2)]
    return [cards[order[r]] for r in sorted(ranks)]


def calibrate(
    cards: Sequence[ModelCard], sample_size: int, setup: LatencySetup = LatencySetup(), seed: int = 0
) -> LatencyModel:
    """Measure a FLOPs-spanning sample of ``cards`` on this machine and fit a model for all of them."""
    sample = sample_cards(cards, sample_size, setup, seed)
    return LatencyModel(setup).fit(sample, measure_latencies(sample, setup, seed))
