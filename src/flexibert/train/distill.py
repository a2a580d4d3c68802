"""Knowledge distillation: a child learns from a fine-tuned teacher's outputs as well as from the labels.

The teacher's logits on a trial's training examples are computed once and cached by content (the
teacher's weights and config, the data, the subset and holdout, the teacher's tokenizer and length),
so every trial of a search that distils from the same teacher shares one teacher pass. The loss is
``(1 - alpha) * task_loss + alpha * T^2 * KL(softmax(z_t / T) || softmax(z_s / T))`` for a classifier,
with an MSE to the teacher's output in place of the KL for a regression task.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flexibert._common import FlexiBertError, atomic_path, build_config
from flexibert.model.checkpoint import CONFIG, WEIGHTS, load_checkpoint, load_config
from flexibert.model.overlap import uniform_source_layer
from flexibert.train.batching import Encoded
from flexibert.train.data import DataSource, split_digest
from flexibert.train.encoding_cache import encoded_split, subset_key
from flexibert.train.holdout import Holdout
from flexibert.train.loop import predict
from flexibert.train.tasks import Task
from flexibert.train.tokenization import load_tokenizer, tokenizer_digest


@dataclass(frozen=True)
class Distillation:
    """Distil from ``teacher`` (a fine-tuned FlexiBERT classifier checkpoint of the same task).

    ``alpha`` weighs the teacher against the labels (0: the labels alone), ``temperature`` softens
    both distributions. ``hidden`` adds an MSE between the child's hidden states and the teacher's at
    uniformly mapped layers of equal width; it needs a teacher forward on every batch (a training
    step then costs about one more teacher inference) and the teacher's tokenizer.
    """

    teacher: Path
    alpha: float = 0.5
    temperature: float = 2.0
    hidden: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "teacher", Path(self.teacher))
        number = (int, float)
        if not isinstance(self.alpha, number) or isinstance(self.alpha, bool) or not 0 <= self.alpha <= 1:
            raise FlexiBertError(f"distillation: alpha must be in [0, 1], got {self.alpha!r}")
        temp = self.temperature
        if not isinstance(temp, number) or isinstance(temp, bool) or not (temp > 0 and math.isfinite(temp)):
            raise FlexiBertError(f"distillation: temperature must be a positive number, got {temp!r}")
        if not isinstance(self.hidden, bool):
            raise FlexiBertError(f"distillation: hidden must be true or false, got {self.hidden!r}")

    @classmethod
    def of(cls, value: "Distillation | dict[str, Any] | str | Path") -> "Distillation":
        """From what a user writes: a mapping of these fields, or just the teacher's path."""
        if isinstance(value, cls):
            return value
        if isinstance(value, dict):
            return build_config(cls, value, "'distill'")
        if isinstance(value, (str, Path)):
            return cls(Path(value))
        raise FlexiBertError(f"distillation: expected a teacher path or a mapping, got {type(value).__name__}")


def layer_pairs(student_widths: tuple[int, ...], teacher_widths: tuple[int, ...]) -> list[tuple[int, int]]:
    """``(student layer, teacher layer)`` pairs of equal width under weight transfer's ``uniform`` map
    (``overlap.uniform_source_layer``), so a shallower child's last layer meets the teacher's."""
    ls, lt = len(student_widths), len(teacher_widths)
    pairs = [(j, uniform_source_layer(j, ls, lt)) for j in range(ls)]
    return [(j, t) for j, t in pairs if t < lt and student_widths[j] == teacher_widths[t]]


def _teacher_digest(teacher: Path) -> str:
    h = hashlib.sha256()
    for name in (CONFIG, WEIGHTS):
        with open(teacher / name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                h.update(block)
    return h.hexdigest()[:16]


def _check_teacher(teacher: Path, task: Task) -> None:
    if not (teacher / WEIGHTS).is_file():
        raise FlexiBertError(f"teacher checkpoint not found: {teacher}")
    config = load_config(teacher)
    if config.num_labels != task.num_labels:
        raise FlexiBertError(
            f"teacher {teacher}: has {config.num_labels} labels, task {task.name} has {task.num_labels}"
        )


def teacher_logits(teacher: str | Path, source: DataSource, task: Task, cache_dir: Path, max_samples: int | None,
                   holdout: Holdout | int | None, device: str = "cpu", batch_size: int = 256,
                   draw: str = "random") -> np.ndarray:
    """The teacher's logits on a trial's training examples, in their order (``max_samples``, ``holdout`` and
    ``draw`` as in the trial), from the cache when it holds them, else computed and written atomically.

    The teacher reads the examples through its own tokenizer and saved length, so any tokenizer works.
    """
    teacher, holdout = Path(teacher), Holdout.of(holdout)
    _check_teacher(teacher, task)
    tok = load_tokenizer(teacher)
    max_len = tok.model_max_length
    key = (f"{_teacher_digest(teacher)}-{split_digest(source, task, 'train')}-{tokenizer_digest(tok)}"
           f"-{max_len}-{subset_key(max_samples, draw)}-{holdout.key if holdout else None}")
    path = Path(cache_dir) / "teacher-logits" / f"{task.name}-{key}.npy"
    if path.is_file():
        try:
            return np.load(path)
        except (OSError, ValueError, EOFError):
            pass  # unreadable: recompute and replace it
    data = encoded_split(source, task, "train", tok, max_len, cache_dir, max_samples, holdout, draw)
    model, _ = load_checkpoint(teacher)
    logits = predict(model.to(device), data, tok.pad_token_id, batch_size)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, logits)
    return logits


class DistillObjective:
    """The training loss of a distilled trial, as :func:`~flexibert.train.loop.fit`'s ``objective``."""

    def __init__(self, config: Distillation, logits: np.ndarray, regression: bool, teacher=None,
                 pairs: list[tuple[int, int]] | None = None):
        self.config, self.logits, self.regression = config, logits, regression
        self.teacher, self.pairs = teacher, pairs or []

    def __call__(self, model, idx: np.ndarray, batch: dict):
        import torch
        import torch.nn.functional as F

        out = model(**batch, output_hidden_states=bool(self.pairs))
        z_s = out.logits
        z_t = torch.from_numpy(self.logits[idx]).to(z_s.device, z_s.dtype)
        if self.regression:
            soft = F.mse_loss(z_s, z_t)
        else:
            t = self.config.temperature
            soft = t * t * F.kl_div(F.log_softmax(z_s / t, -1), F.log_softmax(z_t / t, -1), log_target=True,
                                    reduction="batchmean")
        if self.pairs:
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            with torch.no_grad():
                teacher_states = self.teacher(**inputs, output_hidden_states=True).hidden_states
            keep = batch["attention_mask"][..., None].to(z_s.dtype)
            for j, t_layer in self.pairs:  # hidden_states[0] is the embeddings, layer k is at k + 1
                diff = (out.hidden_states[j + 1] - teacher_states[t_layer + 1]) * keep
                soft = soft + diff.pow(2).sum() / (keep.sum() * diff.shape[-1]) / len(self.pairs)
        alpha = self.config.alpha
        return (1 - alpha) * out.loss + alpha * soft


def distill_objective(config: Distillation, source: DataSource, task: Task, train: Encoded, tokenizer,
                      student_widths: tuple[int, ...], cache_dir: Path, max_samples: int | None,
                      holdout: Holdout | None, device: str, draw: str = "random") -> DistillObjective:
    """The objective of a trial distilling per ``config``; ``train`` is the trial's encoded training split.

    Refused before any training: a teacher of another task, and hidden-state distillation with
    another tokenizer (the teacher must read the child's very batches) or no layer of equal width.
    """
    logits = teacher_logits(config.teacher, source, task, cache_dir, max_samples, holdout, device, draw=draw)
    if len(logits) != len(train):
        raise FlexiBertError(f"teacher {config.teacher}: {len(logits)} logits for {len(train)} training examples")
    if not config.hidden:
        return DistillObjective(config, logits, task.is_regression)
    teacher_tok = load_tokenizer(config.teacher)
    if tokenizer_digest(teacher_tok) != tokenizer_digest(tokenizer):
        raise FlexiBertError(f"teacher {config.teacher}: hidden-state distillation needs the child's tokenizer")
    teacher, _ = load_checkpoint(config.teacher)
    pairs = layer_pairs(tuple(student_widths), tuple(teacher.config.hidden_sizes))
    if not pairs:
        raise FlexiBertError(f"teacher {config.teacher}: no layer of the child has the width of its mapped "
                             f"teacher layer ({list(student_widths)} vs {list(teacher.config.hidden_sizes)})")
    return DistillObjective(config, logits, task.is_regression, teacher.to(device).eval(), pairs)
