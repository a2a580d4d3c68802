"""Design spaces and model cards: what architectures exist, counted exactly and enumerated lazily.

A space is a YAML file of allowed values per dimension. Under the *monotone* rule
(the study's), every per-layer list is non-decreasing in the spec's value order,
which for similarity means sdp before wma. Under the *full* rule any per-layer
choice is allowed. A layer's width must be divisible by its head count.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, Sequence

from flexibert._common import FlexiBertError, read_yaml

Rule = Literal["monotone", "full"]
RULES: tuple[str, ...] = ("monotone", "full")
SIMILARITIES: tuple[str, ...] = ("sdp", "wma")
CARD_KEYS: tuple[str, ...] = ("l", "a", "h", "f", "s")
PER_LAYER: tuple[str, ...] = ("a", "h", "f", "s")
_SPEC_KEYS = {"name", "layers", "heads", "hidden", "feed_forward", "similarity"}


@dataclass(frozen=True)
class ModelCard:
    """One architecture: per-layer heads ``a``, width ``h``, feed-forward ``f`` and similarity ``s``."""

    l: int  # noqa: E741 - the study's name
    a: tuple[int, ...]
    h: tuple[int, ...]
    f: tuple[int, ...]
    s: tuple[str, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.l, int) or isinstance(self.l, bool) or self.l < 1:
            raise FlexiBertError(f"model card: 'l' must be a positive integer, got {self.l!r}")
        for key in PER_LAYER:
            value = getattr(self, key)
            if not isinstance(value, (list, tuple)):
                raise FlexiBertError(f"model card: '{key}' must be a list, got {value!r}")
            if len(value) != self.l:
                raise FlexiBertError(f"model card: '{key}' has {len(value)} entries but l = {self.l}")
            object.__setattr__(self, key, tuple(value))
        for key in ("a", "h", "f"):
            for v in getattr(self, key):
                if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                    raise FlexiBertError(f"model card: '{key}' values must be positive integers, got {v!r}")
        for v in self.s:
            if v not in SIMILARITIES:
                raise FlexiBertError(f"model card: unknown similarity {v!r}; expected one of {list(SIMILARITIES)}")
        for j, (a, h) in enumerate(zip(self.a, self.h)):
            if h % a:
                raise FlexiBertError(f"model card: layer {j} width {h} is not divisible by its {a} heads")

    @classmethod
    def from_dict(cls, d: Any) -> "ModelCard":
        """Build from ``{l, a, h, f, s}``; unknown or missing keys are errors."""
        if not isinstance(d, dict):
            raise FlexiBertError(f"model card must be a mapping with keys {list(CARD_KEYS)}, got {type(d).__name__}")
        unknown = sorted(set(d) - set(CARD_KEYS))
        if unknown:
            raise FlexiBertError(f"model card: unknown key(s) {unknown}; expected {list(CARD_KEYS)}")
        missing = [k for k in CARD_KEYS if k not in d]
        if missing:
            raise FlexiBertError(f"model card: missing key(s) {missing}")
        return cls(l=d["l"], a=d["a"], h=d["h"], f=d["f"], s=d["s"])

    @classmethod
    def homogeneous(cls, l: int, a: int, h: int, f: int, s: str = "sdp") -> "ModelCard":  # noqa: E741
        return cls(l=l, a=(a,) * l, h=(h,) * l, f=(f,) * l, s=(s,) * l)

    def to_dict(self) -> dict[str, Any]:
        return {"l": self.l, "a": list(self.a), "h": list(self.h), "f": list(self.f), "s": list(self.s)}

    @property
    def key(self) -> str:
        """Canonical JSON text: a stable identity for storage and caching."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def __str__(self) -> str:
        layers = ", ".join(f"{a}x{h}/{f}/{s}" for a, h, f, s in zip(self.a, self.h, self.f, self.s))
        return f"L{self.l}[{layers}]"


def _int_list(name: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, list) or not value:
        raise FlexiBertError(f"space spec: '{name}' must be a non-empty list, got {value!r}")
    for v in value:
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise FlexiBertError(f"space spec: '{name}' values must be positive integers, got {v!r}")
    if len(set(value)) != len(value):
        raise FlexiBertError(f"space spec: '{name}' has duplicate values")
    return tuple(sorted(value))


def _nondecreasing_count(n_values: int, length: int) -> int:
    """Number of non-decreasing sequences of ``length`` over ``n_values`` ordered values."""
    from math import comb

    return comb(n_values + length - 1, length)


@dataclass(frozen=True)
class DesignSpace:
    """Allowed values per dimension plus the rule that links layers."""

    layers: tuple[int, ...]
    heads: tuple[int, ...]
    hidden: tuple[int, ...]
    feed_forward: tuple[int, ...]
    similarity: tuple[str, ...]
    rule: str = "monotone"
    name: str = "custom"

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise FlexiBertError(f"unknown rule {self.rule!r}; expected one of {list(RULES)}")
        sims = list(self.similarity)
        if not sims or any(s not in SIMILARITIES for s in sims) or len(set(sims)) != len(sims):
            raise FlexiBertError(f"space spec: 'similarity' must be distinct values from {list(SIMILARITIES)}")
        # sdp is ordered before wma whatever order the file lists them in.
        object.__setattr__(self, "similarity", tuple(s for s in SIMILARITIES if s in sims))
        if not any(h % a == 0 for h in self.hidden for a in self.heads):
            raise FlexiBertError("space spec: no hidden size is divisible by any head count")

    @classmethod
    def from_dict(cls, d: Any, rule: str = "monotone") -> "DesignSpace":
        if not isinstance(d, dict):
            raise FlexiBertError("space spec must be a mapping of dimension -> list of values")
        unknown = sorted(set(d) - _SPEC_KEYS)
        if unknown:
            raise FlexiBertError(f"space spec: unknown key(s) {unknown}; expected {sorted(_SPEC_KEYS)}")
        missing = sorted(_SPEC_KEYS - {"name"} - set(d))
        if missing:
            raise FlexiBertError(f"space spec: missing key(s) {missing}")
        sims = d["similarity"]
        if not isinstance(sims, list):
            raise FlexiBertError(f"space spec: 'similarity' must be a list, got {sims!r}")
        return cls(
            layers=_int_list("layers", d["layers"]),
            heads=_int_list("heads", d["heads"]),
            hidden=_int_list("hidden", d["hidden"]),
            feed_forward=_int_list("feed_forward", d["feed_forward"]),
            similarity=tuple(str(s) for s in sims),
            rule=rule,
            name=str(d.get("name", "custom")),
        )

    @classmethod
    def from_yaml(cls, path: str | Path, rule: str = "monotone") -> "DesignSpace":
        return cls.from_dict(read_yaml(path, f"space spec not found: {path}"), rule=rule)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "layers": list(self.layers),
            "heads": list(self.heads),
            "hidden": list(self.hidden),
            "feed_forward": list(self.feed_forward),
            "similarity": list(self.similarity),
            "rule": self.rule,
        }

    @property
    def spec_hash(self) -> str:
        """Short digest of values and rule: keys run directories and caches."""
        text = json.dumps({k: v for k, v in self.to_dict().items() if k != "name"}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    # -- counting -----------------------------------------------------------------
    def _pair_sequences(self, length: int) -> int:
        """Count per-layer (heads, hidden) sequences; divisibility couples the two dimensions."""
        pairs = [(i, k) for i, a in enumerate(self.heads) for k, h in enumerate(self.hidden) if h % a == 0]
        if self.rule == "full":
            return len(pairs) ** length
        # DP over layers: ways[p] = sequences ending in pair p, both indices non-decreasing.
        ways = {p: 1 for p in pairs}
        for _ in range(length - 1):
            ways = {p: sum(w for q, w in ways.items() if q[0] <= p[0] and q[1] <= p[1]) for p in pairs}
        return sum(ways.values())

    def count(self, layers: int | None = None) -> int:
        """Exact number of cards, without enumerating them."""
        total = 0
        for length in self.layers if layers is None else (layers,):
            if self.rule == "full":
                rest = (len(self.feed_forward) * len(self.similarity)) ** length
            else:
                rest = _nondecreasing_count(len(self.feed_forward), length) * _nondecreasing_count(
                    len(self.similarity), length
                )
            total += self._pair_sequences(length) * rest
        return total

    def __len__(self) -> int:
        return self.count()

    # -- enumeration --------------------------------------------------------------
    def _sequences(self, values: Sequence[Any], length: int) -> Iterator[tuple[Any, ...]]:
        if self.rule == "full":
            return itertools.product(values, repeat=length)
        return itertools.combinations_with_replacement(values, length)

    def __iter__(self) -> Iterator[ModelCard]:
        """Cards in the study's order: layers, then heads, hidden, similarity, feed-forward lists."""
        for length in self.layers:
            for a in self._sequences(self.heads, length):
                for h in self._sequences(self.hidden, length):
                    if any(hj % aj for aj, hj in zip(a, h)):
                        continue
                    for s in self._sequences(self.similarity, length):
                        for f in self._sequences(self.feed_forward, length):
                            yield ModelCard(l=length, a=a, h=h, f=f, s=s)

    # -- membership ---------------------------------------------------------------
    def validate(self, card: ModelCard) -> ModelCard:
        """Return ``card`` if it lies in this space, else raise naming the first problem."""
        if card.l not in self.layers:
            raise FlexiBertError(f"model card: l = {card.l} is not in the space's layers {list(self.layers)}")
        allowed = {"a": self.heads, "h": self.hidden, "f": self.feed_forward, "s": self.similarity}
        for key, values in allowed.items():
            seq = getattr(card, key)
            for j, v in enumerate(seq):
                if v not in values:
                    raise FlexiBertError(f"model card: {key}[{j}] = {v!r} is not in the space's values {list(values)}")
            if self.rule == "monotone":
                idx = [values.index(v) for v in seq]
                if any(x > y for x, y in zip(idx, idx[1:])):
                    raise FlexiBertError(
                        f"model card: '{key}' = {list(seq)} is not non-decreasing, as the monotone rule requires"
                    )
        return card

    def __contains__(self, card: object) -> bool:
        if not isinstance(card, ModelCard):
            return False
        try:
            self.validate(card)
        except FlexiBertError:
            return False
        return True
