"""Token ids for a split, cached on disk, and length-bucketed, dynamically padded batches.

SST-2 sentences average 13 tokens: padding every batch to the profile's maximum
length would multiply the work of a small model several times on a CPU, so each
batch is padded only to its own longest sequence, and training batches are drawn
from buckets of similar lengths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from flexibert._common import atomic_path
from flexibert.train.data import Examples

BUCKET_BATCHES = 50  # a training bucket holds this many batches of similar lengths


@dataclass(frozen=True)
class Encoded:
    """Ragged token ids (flat arrays plus offsets) and labels of one split."""

    ids: np.ndarray  # int32, all sequences concatenated
    type_ids: np.ndarray  # int8, same length as ids
    offsets: np.ndarray  # int64, n + 1
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)

    def save(self, path: str | Path) -> None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, ids=self.ids, type_ids=self.type_ids, offsets=self.offsets, labels=self.labels)

    @classmethod
    def load(cls, path: str | Path) -> "Encoded | None":
        """The cached arrays, or None when the file is missing or unreadable (then re-encode)."""
        try:
            with np.load(path) as z:
                return cls(z["ids"], z["type_ids"], z["offsets"], z["labels"])
        except (OSError, ValueError, KeyError, EOFError):
            return None


def encode(examples: Examples, tokenizer, max_len: int) -> Encoded:
    """Tokenize (pairs as ``[CLS] a [SEP] b [SEP]``), truncated to ``max_len``."""
    texts = [list(col) for col in examples.texts]
    enc = tokenizer(*texts, truncation=True, max_length=max_len, return_token_type_ids=True,
                    return_attention_mask=False)
    ids, types = enc["input_ids"], enc["token_type_ids"]
    lengths = np.fromiter((len(x) for x in ids), dtype=np.int64, count=len(ids))
    return Encoded(
        ids=np.fromiter((t for seq in ids for t in seq), dtype=np.int32, count=int(lengths.sum())),
        type_ids=np.fromiter((t for seq in types for t in seq), dtype=np.int8, count=int(lengths.sum())),
        offsets=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        labels=examples.labels,
    )


def batch_order(lengths: np.ndarray, batch_size: int, rng: np.random.Generator | None) -> list[np.ndarray]:
    """Index batches: with ``rng``, shuffled buckets sorted by length; without, simply by length."""
    if rng is None:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    perm = rng.permutation(len(lengths))
    size = batch_size * BUCKET_BATCHES
    batches = []
    for start in range(0, len(perm), size):
        bucket = perm[start : start + size]
        bucket = bucket[np.argsort(lengths[bucket], kind="stable")]
        batches += [bucket[i : i + batch_size] for i in range(0, len(bucket), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def collate(data: Encoded, idx: np.ndarray, pad_id: int) -> dict:
    """Tensors for one batch, padded to its longest sequence."""
    import torch

    lengths = data.lengths[idx]
    width = int(lengths.max())
    ids = np.full((len(idx), width), pad_id, dtype=np.int64)
    types = np.zeros((len(idx), width), dtype=np.int64)
    mask = np.zeros((len(idx), width), dtype=np.int64)
    for row, (i, n) in enumerate(zip(idx, lengths)):
        lo = data.offsets[i]
        ids[row, :n] = data.ids[lo : lo + n]
        types[row, :n] = data.type_ids[lo : lo + n]
        mask[row, :n] = 1
    return {
        "input_ids": torch.from_numpy(ids),
        "token_type_ids": torch.from_numpy(types),
        "attention_mask": torch.from_numpy(mask),
        "labels": torch.from_numpy(data.labels[idx]),
    }


def batches(data: Encoded, batch_size: int, pad_id: int,
            rng: np.random.Generator | None = None) -> Iterator[tuple[np.ndarray, dict]]:
    """``(indices, tensors)`` per batch, in the order of :func:`batch_order`."""
    for idx in batch_order(data.lengths, batch_size, rng):
        yield idx, collate(data, idx, pad_id)
