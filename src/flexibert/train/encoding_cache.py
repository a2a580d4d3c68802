"""Token ids of a split, cached on disk by content so that parallel trials of a search share them.

The key digests the split's data (:func:`~flexibert.train.data.split_digest`), the tokenizer's
pipeline (:func:`~flexibert.train.tokenization.tokenizer_digest`), the length, the subset's size and
draw, and the validation holdout.
"""

from __future__ import annotations

from pathlib import Path

from flexibert._common import FlexiBertError
from flexibert.train.batching import Encoded, encode
from flexibert.train.data import DataSource, Examples, load_split, split_digest
from flexibert.train.holdout import Holdout
from flexibert.train.tasks import Task
from flexibert.train.tokenization import tokenizer_digest

SUBSET_SEED = 42  # training subsets do not follow the trial seed: every trial of a search sees the same data
HOLDOUT_SEED = 7  # likewise the validation holdout: every trial and every finalist is scored on the same one
VALIDATION = "validation"  # the split carved out of train by ``holdout``


def encoded_split(source: DataSource, task: Task, split: str, tokenizer, max_len: int, cache_dir: Path,
                  max_samples: int | None = None, holdout: Holdout | int | None = None,
                  draw: str = "random") -> Encoded:
    """Token ids of a split (or of its seeded subset), from the cache when it holds them.

    With ``holdout`` (a :class:`~flexibert.train.holdout.Holdout`, or a size), its examples are carved out of train (seeded, fixed) as the split ``"validation"``,
    and ``"train"`` is the rest; ``max_samples`` then subsets that rest, drawn by ``draw`` (see
    :meth:`~flexibert.train.data.Examples.subset`).
    """
    source_split = "train" if split == VALIDATION else split
    holdout = Holdout.of(holdout)
    held = holdout.key if holdout else None
    key = (f"{split_digest(source, task, source_split)}-{tokenizer_digest(tokenizer)}-{max_len}"
           f"-{subset_key(max_samples, draw)}-{held}")
    cache = Path(cache_dir) / "encoded" / f"{task.name}-{split}-{key}.npz"
    cached = Encoded.load(cache) if cache.exists() else None
    if cached is not None:
        return cached
    enc = encode(split_examples(source, task, split, max_samples, holdout, draw), tokenizer, max_len)
    enc.save(cache)
    return enc


def subset_key(max_samples: int | None, draw: str) -> str:
    """What a cache key holds of a subset: its size, and its draw unless random (the keys written before)."""
    return f"{max_samples}" if max_samples is None or draw == "random" else f"{max_samples}{draw}"


def split_examples(source: DataSource, task: Task, split: str, max_samples: int | None = None,
                   holdout: Holdout | int | None = None, draw: str = "random") -> Examples:
    """The examples a trial reads as ``split``, before tokenization: anything else that must see exactly
    a trial's data (a classical baseline) reads them here."""
    holdout = Holdout.of(holdout)
    if split == VALIDATION and not holdout:
        raise FlexiBertError("the validation split exists only with a holdout carved from train")
    examples = load_split(source, task, "train" if split == VALIDATION else split)
    if holdout and split in ("train", VALIDATION):
        rest, val = examples.holdout(holdout.size, HOLDOUT_SEED, holdout.split)
        examples = val if split == VALIDATION else rest
    if split != VALIDATION:
        examples = examples.subset(max_samples, SUBSET_SEED, draw)
    return examples
