"""What a user can afford: the one budget a run states, checks and reports.

A run config's ``budget:`` section, the search's stored config and the report all hold
this one :class:`Budget`; candidates over any limit are never proposed, and seeds (trained
whatever their size, since children inherit from them) never win over it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Sequence

import numpy as np

from flexibert._common import FlexiBertError, positive_number
from flexibert.space.design_space import ModelCard


@dataclass(frozen=True)
class Budget:
    """Upper limits a chosen encoder must respect; ``None`` leaves a limit open.

    Parameters count the embeddings and encoder (``cost.param_count`` without a head), FLOPs are
    one forward sequence of 128 tokens (``cost.flops``), latency is batch 1 at sequence 128 on the
    run's machine, measured or predicted by the run's latency model. ``max_latency_ratio`` is the
    question "at most half my encoder's latency": a fraction of the imported seed's latency, which
    only a run can measure, so the run makes it milliseconds (:meth:`resolved`) before its search.
    """

    max_params: int | None = None
    max_flops: int | None = None
    max_latency_ms: float | None = None
    max_latency_ratio: float | None = None

    def __post_init__(self) -> None:
        for name, kind in (("max_params", int), ("max_flops", int), ("max_latency_ms", float),
                           ("max_latency_ratio", float)):
            value = getattr(self, name)
            if value is not None:
                positive_number(f"budget.{name}", value, kind)

    @classmethod
    def of(cls, value: "Budget | dict[str, Any] | None") -> "Budget":
        """A budget from itself, its stored dict, or nothing (no limit)."""
        if isinstance(value, Budget):
            return value
        if value is None:
            return cls()
        if not isinstance(value, dict):
            raise FlexiBertError(f"budget: expected a mapping, got {value!r}")
        unknown = sorted(set(value) - set(cls.__dataclass_fields__))
        if unknown:
            raise FlexiBertError(f"budget: unknown key(s) {unknown}; expected {sorted(cls.__dataclass_fields__)}")
        return cls(**value)

    def __bool__(self) -> bool:
        return any(v is not None for v in asdict(self).values())

    def to_dict(self) -> dict[str, Any]:
        """The limits set, for storing and reading back with :meth:`of`."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def resolved(self, seed_latency_ms: float) -> "Budget":
        """This budget with its latency ratio made milliseconds of the seed's measured latency (the tighter
        limit where one in milliseconds is set too)."""
        if self.max_latency_ratio is None:
            return self
        ms = self.max_latency_ratio * seed_latency_ms
        if self.max_latency_ms is not None:
            ms = min(ms, self.max_latency_ms)
        return replace(self, max_latency_ms=round(ms, 3), max_latency_ratio=None)

    def breaks(self, card: ModelCard, latency_ms: float | None = None, dims=None, seq_len: int = 128) -> tuple[str, ...]:
        """Names of the limits ``card`` breaks (empty when it fits) under the run's ``dims`` (``ArchDims``)."""
        from flexibert.model.cost import ArchDims, flops, param_count

        if self.max_latency_ratio is not None:
            raise FlexiBertError("budget: max_latency_ratio is a fraction of the seed's measured latency; "
                                 "a run resolves it into max_latency_ms before it checks a card")
        dims = dims or ArchDims()
        broken = []
        if self.max_params is not None and param_count(card, dims) > self.max_params:
            broken.append("max_params")
        if self.max_flops is not None and flops(card, seq_len, dims) > self.max_flops:
            broken.append("max_flops")
        if self.max_latency_ms is not None:
            if latency_ms is None:
                raise FlexiBertError("budget: max_latency_ms is set, so a latency is needed to check a card")
            if latency_ms > self.max_latency_ms:
                broken.append("max_latency_ms")
        return tuple(broken)

    def mask(self, cards: Sequence[ModelCard], dims=None, latency_model: str | None = None) -> np.ndarray:
        """Which ``cards`` fit (all when there is no limit); a latency limit needs the run's fitted model."""
        if not self:
            return np.ones(len(cards), dtype=bool)
        latency = None
        if self.max_latency_ms is not None:
            if not latency_model:
                raise FlexiBertError("a latency budget needs a fitted latency model (the run's latency stage)")
            from flexibert.model.latency import LatencyModel

            latency = LatencyModel.load(latency_model).predict(cards)
        return np.array([not self.breaks(c, None if latency is None else float(latency[i]), dims)
                         for i, c in enumerate(cards)], dtype=bool)
