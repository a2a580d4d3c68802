"""The report's input: a plain in-memory snapshot of a search, validated once at the boundary.

Keeping the report independent of storage lets it be built (and tested) from any
source: a finished run, a half-finished one, or the 2021 study's library.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from flexibert._common import FlexiBertError
from flexibert.model.cost import param_count
from flexibert.space.design_space import ModelCard

QUALITY_KEYS: tuple[str, ...] = ("n_trained", "spearman", "kendall", "mae")
BUDGET_KEYS: tuple[str, ...] = ("max_params", "max_flops", "max_latency_ms")
LATENCY_KEYS: tuple[str, ...] = ("batch_1", "batch_32")


def _vector(name: str, value: Any, n: int) -> np.ndarray:
    arr = np.array(value, dtype=float)
    if arr.shape != (n,):
        raise FlexiBertError(f"report data: '{name}' must have shape ({n},), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise FlexiBertError(f"report data: '{name}' has non-finite values")
    arr.setflags(write=False)
    return arr


def _index(name: str, i: Any, n: int) -> int:
    if not isinstance(i, (int, np.integer)) or isinstance(i, bool) or not 0 <= i < n:
        raise FlexiBertError(f"report data: '{name}' index {i!r} is not a model index in [0, {n})")
    return int(i)


def _number(name: str, x: Any, allow_nan: bool = False) -> float:
    try:
        value = float(x)
    except (TypeError, ValueError):
        raise FlexiBertError(f"report data: '{name}' value {x!r} is not a number") from None
    if math.isinf(value) or (math.isnan(value) and not allow_nan):
        raise FlexiBertError(f"report data: '{name}' value {x!r} is not finite")
    return value


def checked_mapping(name: str, value: Any, required: Sequence[str], optional: Sequence[str] = ()) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise FlexiBertError(f"report data: '{name}' must be a mapping, got {type(value).__name__}")
    missing = [k for k in required if k not in value]
    if missing:
        raise FlexiBertError(f"report data: '{name}' lacks key(s) {missing}")
    unknown = sorted(set(value) - set(required) - set(optional))
    if unknown:
        raise FlexiBertError(f"report data: '{name}' has unknown key(s) {unknown}")
    return value


def checked_numbers(name: str, value: Any, keys: Sequence[str],
                    optional: Sequence[str] = ()) -> dict[str, float] | None:
    """A mapping of ``keys`` (and any of ``optional``) to finite numbers, or None."""
    if value is None:
        return None
    value = checked_mapping(name, value, keys, optional)
    return {k: _number(f"{name}.{k}", value[k]) for k in (*keys, *optional) if k in value}


def _card(name: str, value: Any) -> ModelCard:
    if isinstance(value, ModelCard):
        return value
    try:
        return ModelCard.from_dict(dict(value) if isinstance(value, Mapping) else value)
    except FlexiBertError as e:
        raise FlexiBertError(f"report data: '{name}': {e}") from None


def _count(name: str, value: Any) -> int:
    number = _number(name, value)
    if number < 0 or number != int(number):
        raise FlexiBertError(f"report data: '{name}' value {value!r} is not a count")
    return int(number)


MODEL_KEYS: tuple[str, ...] = ("card", "validation", "dev", "params", "flops")
MODEL_OPTIONAL: tuple[str, ...] = ("latency_ms", "name", "dev_sd", "n_seeds", "refit")


def confirmed_model(name: str, value: Any) -> dict[str, Any]:
    """A confirmed model (winner or reference) as plain values: ``card`` becomes a :class:`ModelCard`."""
    value = checked_mapping(name, value, MODEL_KEYS, MODEL_OPTIONAL)
    model: dict[str, Any] = {
        "card": _card(f"{name}.card", value["card"]),
        "validation": _number(f"{name}.validation", value["validation"]),
        "dev": _number(f"{name}.dev", value["dev"]),
        "params": _count(f"{name}.params", value["params"]),
        "flops": _count(f"{name}.flops", value["flops"]),
        "latency_ms": checked_numbers(f"{name}.latency_ms", value.get("latency_ms"), LATENCY_KEYS),
    }
    if value.get("name") is not None:
        model["name"] = str(value["name"])
    if value.get("dev_sd") is not None:
        model["dev_sd"] = _number(f"{name}.dev_sd", value["dev_sd"])
    if value.get("n_seeds") is not None:
        model["n_seeds"] = _count(f"{name}.n_seeds", value["n_seeds"])
    if value.get("refit") is not None:
        if not isinstance(value["refit"], (bool, np.bool_)):
            raise FlexiBertError(f"report data: '{name}.refit' must be true or false, got {value['refit']!r}")
        model["refit"] = bool(value["refit"])
    return model


def _finalist(name: str, value: Any) -> dict[str, Any]:
    """A finalist: a confirmed model with its search (``proxy``) score, marked ``winner`` or not."""
    value = checked_mapping(name, value, ("card", "proxy", "validation", "dev", "params", "flops", "winner"),
                            ("latency_ms",))
    if not isinstance(value["winner"], (bool, np.bool_)):
        raise FlexiBertError(f"report data: '{name}.winner' must be true or false, got {value['winner']!r}")
    model = confirmed_model(name, {k: v for k, v in value.items() if k not in ("proxy", "winner")})
    return {**model, "proxy": _number(f"{name}.proxy", value["proxy"]), "winner": bool(value["winner"])}


def checked_baseline(name: str, value: Any) -> dict[str, Any] | None:
    """A baseline ``{name, validation, dev}`` as plain values, or None."""
    if value is None:
        return None
    value = checked_mapping(name, value, ("name", "validation", "dev"))
    return {"name": str(value["name"]), "validation": _number(f"{name}.validation", value["validation"]),
            "dev": _number(f"{name}.dev", value["dev"])}


def baseline_standing(model: Mapping[str, Any], baseline: Mapping[str, Any]) -> str:
    """How a checked baseline stands against a confirmed model: ``as good`` on dev, ``unsettled`` (below it on
    dev, not on validation) or ``beaten`` on both; the report and the hub card say the same."""
    if baseline["dev"] >= model["dev"]:
        return "as good"
    return "unsettled" if baseline["validation"] >= model["validation"] else "beaten"


def plain(value: Any) -> Any:
    """JSON-ready copy of validated answer values: cards back to their dicts."""
    if isinstance(value, ModelCard):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@dataclass(frozen=True, eq=False)
class Answer:
    """The run's answer to its question: the confirmed winner beside the reference it must keep up with.

    ``retention`` is the winner's score over the reference's, ``speedup`` the reference's
    latency over the winner's; the baseline (e.g. TF-IDF + logistic regression on the same
    data) shows when a bag of words would do.
    """

    question: str
    winner: Mapping[str, Any]
    reference: Mapping[str, Any] | None = None
    retention: Mapping[str, float] | None = None  # {"dev", "validation"}, and "dev_ci95" over several seeds
    speedup: Mapping[str, float] | None = None  # {"batch_1", "batch_32"}
    finalists: Sequence[Mapping[str, Any]] = ()
    baseline: Mapping[str, Any] | None = None  # {"name", "validation", "dev"}
    metric: str = "accuracy"
    data: Mapping[str, Any] | None = None  # how validation was carved out of train, what dev shares with train

    def __post_init__(self) -> None:
        if not isinstance(self.question, str) or not self.question.strip():
            raise FlexiBertError("report data: 'answer.question' must be a non-empty string")
        winner = confirmed_model("answer.winner", self.winner)
        reference = None if self.reference is None else confirmed_model("answer.reference", self.reference)
        finalists = tuple(_finalist(f"answer.finalists[{k}]", f) for k, f in enumerate(self.finalists))
        marked = [f["card"] for f in finalists if f["winner"]]
        if len(marked) > 1 or (marked and marked[0] != winner["card"]):
            raise FlexiBertError("report data: 'answer.finalists' must mark the winner's card, and only it, as winner")
        fields = dict(
            winner=winner, reference=reference, finalists=finalists,
            baseline=checked_baseline("answer.baseline", self.baseline),
            retention=checked_numbers("answer.retention", self.retention, ("dev", "validation"), ("dev_ci95",)),
            speedup=checked_numbers("answer.speedup", self.speedup, LATENCY_KEYS), metric=str(self.metric),
        )
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def to_json(self) -> dict[str, Any]:
        names = ("question", "winner", "reference", "retention", "speedup", "finalists", "baseline", "metric")
        return {name: plain(getattr(self, name)) for name in names}


def _budget(value: Any) -> dict[str, float]:
    """The limits that are set; ``None`` values (open limits) are dropped."""
    value = checked_mapping("budget", value, (), BUDGET_KEYS)
    limits = {k: _number(f"budget.{k}", v) for k, v in value.items() if v is not None}
    for k, v in limits.items():
        if v <= 0:
            raise FlexiBertError(f"report data: 'budget.{k}' must be positive, got {v!r}")
    return {k: limits[k] for k in BUDGET_KEYS if k in limits}


@dataclass(frozen=True, eq=False)
class ReportData:
    """Everything a report shows; ``params`` defaults to :func:`flexibert.model.cost.param_count` of each card."""

    cards: Sequence[ModelCard]
    embeddings: np.ndarray  # (n, m) Transformer2vec coordinates
    measured: Mapping[int, float]  # model index -> measured value of ``metric_name``
    predicted_mean: np.ndarray  # (n,) surrogate mean
    predicted_std: np.ndarray  # (n,) surrogate standard deviation
    seeds: Sequence[int] = ()
    sweep: Mapping[int, float] = field(default_factory=dict)  # m -> Frobenius error
    dissimilarity: np.ndarray | None = None  # (n, n), None for huge spaces
    quality: Sequence[Mapping[str, float]] = ()  # held-out surrogate quality over the search
    task: str = "SST-2"
    metric_name: str = "accuracy"
    title: str = "FlexiBERT design-space report"
    params: np.ndarray | None = None  # (n,) parameter counts
    latency_ms: np.ndarray | None = None  # (n,) latency on the run's machine (measured or predicted), if known
    flops: np.ndarray | None = None  # (n,) forward FLOPs per card
    fits_budget: np.ndarray | None = None  # (n,) bool; None: from ``budget`` and the costs, or no budget
    budget: Mapping[str, float | None] = field(default_factory=dict)  # among max_params, max_flops, max_latency_ms
    answer: Answer | None = None  # the confirmed answer; None: the search is not confirmed

    def __post_init__(self) -> None:
        cards = tuple(self.cards)
        if not cards:
            raise FlexiBertError("report data: 'cards' is empty")
        for i, card in enumerate(cards):
            if not isinstance(card, ModelCard):
                raise FlexiBertError(f"report data: cards[{i}] is a {type(card).__name__}, not a ModelCard")
        n = len(cards)
        emb = np.array(self.embeddings, dtype=float)
        if emb.ndim != 2 or emb.shape[0] != n or emb.shape[1] < 1:
            raise FlexiBertError(f"report data: 'embeddings' must have shape ({n}, m), got {emb.shape}")
        if not np.isfinite(emb).all():
            raise FlexiBertError("report data: 'embeddings' has non-finite values")
        emb.setflags(write=False)
        mean = _vector("predicted_mean", self.predicted_mean, n)
        std = _vector("predicted_std", self.predicted_std, n)
        if (std < 0).any():
            raise FlexiBertError("report data: 'predicted_std' has negative values")
        params = self.params if self.params is not None else [param_count(c) for c in cards]
        params = _vector("params", params, n)
        measured = {_index("measured", i, n): _number("measured", v) for i, v in dict(self.measured).items()}
        seeds = tuple(_index("seeds", i, n) for i in self.seeds)
        if len(set(seeds)) != len(seeds):
            raise FlexiBertError(f"report data: 'seeds' lists a model twice: {list(seeds)}")
        sweep = {}
        for m, err in dict(self.sweep).items():
            if not isinstance(m, (int, np.integer)) or isinstance(m, bool) or m < 1:
                raise FlexiBertError(f"report data: 'sweep' key {m!r} is not a positive embedding dimension")
            sweep[int(m)] = _number(f"sweep[{m}]", err)
        dis = None
        if self.dissimilarity is not None:
            dis = np.array(self.dissimilarity, dtype=float)
            if dis.shape != (n, n):
                raise FlexiBertError(f"report data: 'dissimilarity' must have shape ({n}, {n}), got {dis.shape}")
            if not np.isfinite(dis).all():
                raise FlexiBertError("report data: 'dissimilarity' has non-finite values")
            dis.setflags(write=False)
        quality = []
        for k, row in enumerate(self.quality):
            missing = [key for key in QUALITY_KEYS if not isinstance(row, Mapping) or key not in row]
            if missing:
                raise FlexiBertError(f"report data: quality[{k}] lacks key(s) {missing}")
            quality.append({key: _number(f"quality[{k}].{key}", row[key], allow_nan=True) for key in QUALITY_KEYS})
        quality.sort(key=lambda r: r["n_trained"])
        latency = None if self.latency_ms is None else _vector("latency_ms", self.latency_ms, n)
        flops = None if self.flops is None else _vector("flops", self.flops, n)
        budget = _budget(self.budget)
        fits = self._fits(budget, n, {"max_params": params, "max_flops": flops, "max_latency_ms": latency})
        if self.answer is not None and not isinstance(self.answer, Answer):
            raise FlexiBertError(f"report data: 'answer' is a {type(self.answer).__name__}, not an Answer")
        fields = dict(cards=cards, embeddings=emb, predicted_mean=mean, predicted_std=std, params=params,
                      latency_ms=latency, flops=flops, budget=budget, fits_budget=fits)
        fields.update(measured=measured, seeds=seeds, sweep=dict(sorted(sweep.items())), dissimilarity=dis)
        fields.update(quality=quality)
        for name, value in fields.items():
            object.__setattr__(self, name, value)

    def _fits(self, budget: dict[str, float], n: int, costs: dict[str, np.ndarray | None]) -> np.ndarray | None:
        """The given ``fits_budget``, else each model's costs checked against ``budget``'s limits."""
        if self.fits_budget is not None:
            fits = np.array(self.fits_budget)
            if fits.shape != (n,) or fits.dtype != bool:
                raise FlexiBertError(
                    f"report data: 'fits_budget' must be ({n},) booleans, got {fits.dtype} {fits.shape}"
                )
        elif budget:
            lacking = [k for k in budget if costs[k] is None]
            if lacking:
                raise FlexiBertError(
                    f"report data: budget {lacking} is set but no cost to check it; pass 'fits_budget'"
                )
            fits = np.logical_and.reduce([costs[k] <= v for k, v in budget.items()])
        else:
            return None
        fits.setflags(write=False)
        return fits

    @property
    def n(self) -> int:
        return len(self.cards)

    @property
    def measured_indices(self) -> np.ndarray:
        return np.array(sorted(self.measured), dtype=int)

    @property
    def allowed(self) -> np.ndarray:
        """(n,) bool: the models the budget allows (all of them without a budget)."""
        return np.ones(self.n, dtype=bool) if self.fits_budget is None else self.fits_budget

    @property
    def measured_values(self) -> np.ndarray:
        return np.array([self.measured[i] for i in sorted(self.measured)], dtype=float)
