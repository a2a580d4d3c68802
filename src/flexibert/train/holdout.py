"""A validation holdout that shares no text with what is trained on, the overlap between two splits, and a
capped training split drawn whole texts first (:func:`whole_first`).

SST-2's training split holds every sentence together with its sub-phrases, so a holdout drawn
at random scores a model on phrases it was trained on: validation sat 7-9 points above dev
and chose between finalists no better than chance. A user's own file can hold the same leak
(duplicates, or one text quoting another). Here the holdout is drawn among *whole* texts
(those no other text contains), and every training example equal to, contained in or
containing a held-out text is dropped from training.

Containment is on words: texts are lower-cased and split into words and punctuation, and a
text contains another when the other's words occur in it contiguously. The columns of a pair
are joined with a separator that no text holds, so a pair contains another only through the
same question with a sentence that contains the other's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

import numpy as np

from flexibert._common import FlexiBertError

HOLDOUT_SPLITS = ("grouped", "random")  # grouped: leak-free as above; random: the earlier uniform draw
SUBSET_DRAWS = ("whole-first", "random")  # how a capped training split is drawn (:func:`whole_first`)
ANCHOR = 4  # words indexing a text's start: every containment is found from one window of up to this many
_WORD = re.compile(r"\w+|[^\w\s]")
_SEP = "\x1f"  # between the columns of a pair: _WORD never yields it

Words = tuple[str, ...]


def check_subset_draw(name: str) -> str:
    if name not in SUBSET_DRAWS:
        raise FlexiBertError(f"subset must be one of {list(SUBSET_DRAWS)}, got {name!r}")
    return name


def check_holdout_split(name: str) -> str:
    if name not in HOLDOUT_SPLITS:
        raise FlexiBertError(f"holdout_split must be one of {list(HOLDOUT_SPLITS)}, got {name!r}")
    return name


@dataclass(frozen=True)
class Holdout:
    """A validation split carved out of train: ``size`` examples, drawn by ``split`` (one of
    :data:`HOLDOUT_SPLITS`) with a fixed seed, so every trial and finalist is scored on the same ones."""

    size: int
    split: str = "grouped"

    def __post_init__(self) -> None:
        if not isinstance(self.size, int) or self.size < 1:
            raise FlexiBertError(f"a validation holdout needs at least 1 example, got {self.size!r}")
        check_holdout_split(self.split)

    @classmethod
    def of(cls, value: "Holdout | int | dict | None") -> "Holdout | None":
        """A holdout from its size (drawn leak-free), its fields, or itself; None stays None."""
        if value is None or isinstance(value, Holdout):
            return value
        if isinstance(value, dict):
            unknown = sorted(set(value) - {"size", "split"})
            if unknown:
                raise FlexiBertError(f"a validation holdout has keys size and split, got {unknown}")
            return cls(**value)
        return cls(value)

    @property
    def key(self) -> str:
        """What a cache key holds of it."""
        return f"{self.size}" if self.split == "random" else f"{self.size}{self.split}"


def words(columns: tuple[str, ...]) -> Words:
    """An example's words (lower-cased, punctuation apart), its columns joined by a separator."""
    out: list[str] = []
    for i, text in enumerate(columns):
        if i:
            out.append(_SEP)
        out.extend(_WORD.findall(text.lower()))
    return tuple(out)


class ContainmentIndex:
    """Which of a set of texts occur inside a given text, found in time linear in that text's length."""

    def __init__(self, texts: Iterable[Words]) -> None:
        self._by_start: dict[Words, list[Words]] = {}
        for t in set(texts):
            if t:
                self._by_start.setdefault(t[:ANCHOR], []).append(t)

    def inside(self, s: Words) -> set[Words]:
        """The indexed texts that ``s`` contains (``s`` itself included when indexed)."""
        found: set[Words] = set()
        for p in range(len(s)):
            for k in range(1, min(ANCHOR, len(s) - p) + 1):
                for t in self._by_start.get(s[p:p + k], ()):
                    if len(t) == k or s[p:p + len(t)] == t:
                        found.add(t)
        return found


def inner_texts(ws: list[Words], index: ContainmentIndex | None = None) -> set[Words]:
    """The texts of ``ws`` that lie inside another, different text of ``ws``: parts, not whole texts."""
    index = index or ContainmentIndex(ws)
    inner: set[Words] = set()
    for s in set(ws):
        inner |= index.inside(s) - {s}
    return inner


def whole_first(texts: list[tuple[str, ...]], n: int, seed: int) -> np.ndarray:
    """Sorted indices of ``n`` of ``texts``, drawn in ``seed``'s order with whole texts before the parts of others.

    A part's words are already in its whole, which also holds their context, and a task is asked about
    whole texts; so a capped training split spends its examples on wholes first (SST-2's split holds each
    sentence with its sub-phrases). Data without parts draws exactly as at random.
    """
    ws = [words(t) for t in texts]
    inner = inner_texts(ws)
    perm = np.random.default_rng(seed).permutation(len(texts))
    part = np.fromiter((ws[i] in inner for i in perm), dtype=bool, count=len(perm))
    return np.sort(perm[np.argsort(part, kind="stable")][:n])


@dataclass(frozen=True)
class HoldoutPlan:
    """Indices into the training split: what is trained on, what is held out, what is dropped."""

    rest: np.ndarray
    validation: np.ndarray
    dropped: np.ndarray  # in neither: equal to, inside or containing a held-out text

    def describe(self) -> dict[str, int]:
        return {"train": len(self.rest), "validation": len(self.validation), "dropped": len(self.dropped)}


def plan_holdout(texts: list[tuple[str, ...]], n: int, seed: int, split: str = "grouped") -> HoldoutPlan:
    """``n`` examples held out by ``seed``: at random (``random``), or among whole texts with every
    training example that shares text with them dropped (``grouped``); all index arrays sorted."""
    check_holdout_split(split)
    total = len(texts)
    if not 0 < n < total:
        raise FlexiBertError(f"a validation holdout needs 0 < n < {total}, got {n}")
    perm = np.random.default_rng(seed).permutation(total)
    if split == "random":
        return HoldoutPlan(np.sort(perm[n:]), np.sort(perm[:n]), np.array([], dtype=np.int64))
    ws = [words(t) for t in texts]
    index = ContainmentIndex(ws)
    inner = inner_texts(ws, index)  # never held out, as dev holds whole texts
    chosen: list[int] = []
    taken: set[Words] = set()
    for i in perm:  # one example per whole text, in the seed's order
        if ws[i] and ws[i] not in inner and ws[i] not in taken:
            taken.add(ws[i])
            chosen.append(int(i))
            if len(chosen) == n:
                break
    if len(chosen) < n:
        raise FlexiBertError(f"a validation holdout of {n} needs {n} distinct texts that no other text contains; "
                             f"the training split has {len(chosen)}")
    held = set(chosen)
    leaked: set[Words] = set()
    for t in taken:
        leaked |= index.inside(t)  # the held-out text itself (its duplicates) and every text inside it
    rest = [i for i in range(total) if i not in held and ws[i] not in leaked]
    dropped = [i for i in range(total) if i not in held and ws[i] in leaked]
    if not rest:
        raise FlexiBertError(f"a validation holdout of {n} leaves nothing to train on once the texts it shares "
                             "are dropped")
    return HoldoutPlan(np.array(rest, dtype=np.int64), np.array(sorted(chosen), dtype=np.int64),
                       np.array(dropped, dtype=np.int64))


def split_overlap(train: list[tuple[str, ...]], dev: list[tuple[str, ...]]) -> dict[str, int]:
    """How much of ``dev`` the training split already holds: dev examples with an exact duplicate in train,
    dev examples inside a longer training text, and dev examples containing a shorter training text of at
    least half their length (a near-copy; shorter shared phrases are ordinary language, not a leak)."""
    tw = [words(t) for t in train]
    train_set = set(tw)
    index = ContainmentIndex(tw)
    dw = [words(t) for t in dev]
    dev_index = ContainmentIndex(dw)
    inside_train: set[Words] = set()
    for s in train_set:
        inside_train |= dev_index.inside(s) - {s}
    exact = sum(d in train_set for d in dw)
    contained = sum(d in inside_train and d not in train_set for d in dw)
    near = sum(d not in train_set and any(2 * len(t) >= len(d) for t in index.inside(d)) for d in dw)
    return {"dev": len(dw), "exact": exact, "inside_train": contained, "contains_train_half": near}
