"""A sequence length read off the data, so short-text tasks stop paying for a length they never use
and long-text tasks are not cut at a default meant for sentences."""

from __future__ import annotations

import math

import numpy as np

from flexibert._common import FlexiBertError
from flexibert.train.data import DataSource, as_source, load_split
from flexibert.train.encoding_cache import SUBSET_SEED
from flexibert.train.tasks import Task, get_task

SAMPLE = 5000  # training rows tokenized: a quantile needs no more, and a large split stays fast


def data_seq_len(task: str | Task, source: DataSource | str | None, tokenizer, quantile: float = 0.95,
                 cap: int = 512, floor: int = 16, sample: int = SAMPLE) -> int:
    """The ``quantile`` of the texts' token counts (special tokens included, a pair counted together as
    ``[CLS] a [SEP] b [SEP]``), within ``[floor, cap]``; ``cap`` is the model's position limit, lowered to the
    tokenizer's own ``model_max_length`` (an imported sentence encoder's declared input length).

    The larger of the training split's and the dev split's quantiles: the texts a model is asked about
    may be longer than those it learns from (SST-2 trains on sentences and their sub-phrases, and is
    asked about whole sentences), and a length read off training alone would cut them. Only the texts'
    lengths are read, never a label. Counted on a fixed seeded sample of at most ``sample`` rows per
    split, the same on every machine.
    """
    if not 0 < quantile <= 1:
        raise FlexiBertError(f"sequence length: quantile must be in (0, 1], got {quantile}")
    if not 1 <= floor <= cap:
        raise FlexiBertError(f"sequence length: need 1 <= floor <= cap, got floor {floor} and cap {cap}")
    if sample < 1:
        raise FlexiBertError(f"sequence length: sample must be >= 1, got {sample}")
    cap = max(floor, min(cap, getattr(tokenizer, "model_max_length", None) or cap))
    task = get_task(task)
    source = as_source(source)
    found = floor
    for split in ("train", *task.dev_splits):
        examples = load_split(source, task, split).subset(sample, SUBSET_SEED)
        enc = tokenizer(*[list(col) for col in examples.texts], truncation=True, max_length=cap,
                        return_attention_mask=False, return_token_type_ids=False)
        lengths = np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(examples))
        found = max(found, math.ceil(float(np.quantile(lengths, quantile))))
    return int(min(cap, found))
