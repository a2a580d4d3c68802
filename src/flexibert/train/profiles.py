"""Named fine-tuning recipes: the study's (``paper``) and one sized for a CPU (``quick``)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from flexibert._common import FlexiBertError, positive_number
from flexibert.train.loop import FitConfig


@dataclass(frozen=True)
class TrainProfile:
    """How to fine-tune: sequence length, batch, AdamW with linear warmup and decay, epochs (and the fewest
    updates, whatever the data's size)."""

    name: str
    max_seq_len: int
    batch_size: int
    lr: float
    epochs: float
    warmup_ratio: float = 0.0
    weight_decay: float = 0.01
    max_train_samples: int | None = None
    min_steps: int = 0
    log_every: int = 50
    eval_batch_size: int = 256

    def __post_init__(self) -> None:
        for key in ("max_seq_len", "batch_size", "log_every", "eval_batch_size"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise FlexiBertError(f"profile {self.name}: {key} must be an integer >= 1, got {value!r}")
        for key in ("lr", "epochs"):
            positive_number(f"profile {self.name}: {key}", getattr(self, key), float)
        if self.max_train_samples is not None and self.max_train_samples < 1:
            raise FlexiBertError(f"profile {self.name}: max_train_samples must be >= 1")
        if not isinstance(self.min_steps, int) or isinstance(self.min_steps, bool) or self.min_steps < 0:
            raise FlexiBertError(f"profile {self.name}: min_steps must be an integer >= 0, got {self.min_steps!r}")

    def optimization(self) -> FitConfig:
        """What :func:`~flexibert.train.loop.fit` needs of this profile."""
        return FitConfig(batch_size=self.batch_size, lr=self.lr, epochs=self.epochs, warmup_ratio=self.warmup_ratio,
                         weight_decay=self.weight_decay, log_every=self.log_every, min_steps=self.min_steps)


PROFILES: dict[str, TrainProfile] = {
    # The study's fine-tuning recipe.
    "paper": TrainProfile("paper", max_seq_len=128, batch_size=64, lr=2e-5, epochs=5),
    # One epoch on a 2-core CPU: small models from scratch or a short MLM need a far larger step than
    # 2e-5, and a larger one still erases what a pretrained seed brings (README, measured figures).
    "quick": TrainProfile("quick", max_seq_len=64, batch_size=32, lr=3e-4, epochs=1, warmup_ratio=0.06),
    # A pretrained encoder fine-tuned briefly on a CPU, its layers inherited by smaller children: a fresh
    # pooler over an inner layer needs a larger step than the usual 2e-5-5e-5 (README, measured figures).
    # One epoch of a small task is too few updates: 90 is about three epochs of 1,000 examples, and leaves
    # SST-2's 3,000-sentence proxy as it was (README, measured figures: bench/min_steps.py).
    "pretrained": TrainProfile("pretrained", max_seq_len=64, batch_size=32, lr=2e-4, epochs=1, warmup_ratio=0.06,
                               min_steps=90),
}


def get_profile(profile: str | TrainProfile, **overrides: Any) -> TrainProfile:
    """A named profile (or the given one) with ``overrides`` applied, e.g. ``max_train_samples=2000``."""
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise FlexiBertError(f"unknown training profile {profile!r}; expected one of {sorted(PROFILES)}")
        profile = PROFILES[profile]
    overrides = {k: v for k, v in overrides.items() if v is not None}
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(TrainProfile)})
    if unknown:
        raise FlexiBertError(f"unknown profile field(s) {unknown}")
    return dataclasses.replace(profile, **overrides) if overrides else profile
