"""Masked-language-model pretraining of cards on a text corpus: the offline route to seed models.

BERT's recipe: 15% of the non-special tokens are chosen; of those 80% become
``[MASK]``, 10% a random token and 10% stay. During training ``FlexiBertForMaskedLM``
decodes the vocabulary only at the chosen positions (``mlm_decode_masked_only``), which is
most of the saving on a CPU; the saved seed keeps Hugging Face's logits contract.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from flexibert._common import FlexiBertError, ensure_new, write_json
from flexibert.space.design_space import ModelCard
from flexibert.space.seeds import card_name
from flexibert.train.batching import Encoded, encode
from flexibert.train.data import Examples, first_line
from flexibert.train.loop import FitConfig, fit, set_threads
from flexibert.train.tokenization import load_tokenizer


@dataclass(frozen=True)
class MlmConfig:
    """Optimisation of the MLM run (defaults: one epoch, sized for small models on a CPU)."""

    max_seq_len: int = 64
    batch_size: int = 64
    lr: float = 1e-3
    epochs: float = 1.0
    max_steps: int | None = None
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    mlm_probability: float = 0.15
    log_every: int = 50
    positions: str = "relative_key"  # the seeds' position scheme: the run's, so that they can pass on weights

    def __post_init__(self) -> None:
        if not 0 < self.mlm_probability < 1:
            raise FlexiBertError(f"mlm_probability must be in (0, 1), got {self.mlm_probability}")
        if self.max_seq_len < 3 or self.batch_size < 1 or not self.lr > 0 or not self.epochs > 0:
            raise FlexiBertError("MLM settings: max_seq_len >= 3, batch_size >= 1, lr > 0 and epochs > 0 are required")

    def optimization(self) -> FitConfig:
        """What :func:`~flexibert.train.loop.fit` needs of this run."""
        return FitConfig(batch_size=self.batch_size, lr=self.lr, epochs=self.epochs, warmup_ratio=self.warmup_ratio,
                         weight_decay=self.weight_decay, log_every=self.log_every, max_steps=self.max_steps)


@dataclass
class PretrainResult:
    card: dict[str, Any]
    checkpoint: str
    steps: int
    wall_s: float
    tokens_per_s: float
    corpus_size: int
    config: dict[str, Any]
    curve: list[dict[str, float]] = field(default_factory=list)


# -- corpora -----------------------------------------------------------------------------------
def _unique(texts: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(t for t in texts if t.strip()))


def file_corpus(paths: Sequence[str | Path]) -> list[str]:
    """The unique non-empty lines of plain-text files."""
    texts = []
    for p in paths:
        try:
            texts += Path(p).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise FlexiBertError(f"corpus file not found: {p}") from None
        except UnicodeDecodeError as e:
            raise FlexiBertError(f"corpus file {p}: not UTF-8 text (byte {e.start})") from None
    out = _unique(t.strip() for t in texts)
    if not out:
        raise FlexiBertError(f"corpus files {[str(p) for p in paths]} hold no text")
    return out


def dataset_corpus(name: str | Path, column: str = "text", split: str = "train") -> list[str]:
    """The unique texts of a Hugging Face dataset column (hub id or ``save_to_disk`` directory)."""
    import datasets

    try:
        if Path(name).is_dir():
            ds = datasets.load_from_disk(str(name))
        else:
            ds = datasets.load_dataset(str(name), split=split)
    except (FileNotFoundError, ValueError, ConnectionError, OSError) as e:
        raise FlexiBertError(f"dataset {name}: cannot load: {first_line(e)}") from None
    if isinstance(ds, datasets.DatasetDict):
        if split not in ds:
            raise FlexiBertError(f"dataset {name}: no split {split!r}; it has {sorted(ds)}")
        ds = ds[split]
    if column not in ds.column_names:
        raise FlexiBertError(f"dataset {name}: no column {column!r}; columns are {ds.column_names}")
    return _unique(str(t) for t in ds[column] if t is not None)


# -- masking -----------------------------------------------------------------------------------
class Masker:
    """BERT's 80/10/10 masking of a batch, drawn from its own seeded generator."""

    def __init__(self, tokenizer, probability: float, seed: int):
        import torch

        self.mask_id = tokenizer.mask_token_id
        self.vocab_size = len(tokenizer)
        self.special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
        self.p = probability
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, batch: dict) -> dict:
        import torch

        ids = batch["input_ids"]
        eligible = ~torch.isin(ids, self.special) & batch["attention_mask"].bool()
        chosen = (torch.rand(ids.shape, generator=self.gen) < self.p) & eligible
        if not chosen.any():  # a batch of very short texts: always predict at least one token
            first = eligible.nonzero()
            if len(first):
                chosen[tuple(first[0])] = True
        labels = torch.where(chosen, ids, torch.full_like(ids, -100))
        r = torch.rand(ids.shape, generator=self.gen)
        masked = ids.clone()
        masked[chosen & (r < 0.8)] = self.mask_id
        swap = chosen & (r >= 0.8) & (r < 0.9)
        masked[swap] = torch.randint(self.vocab_size, ids.shape, generator=self.gen)[swap]
        return {**batch, "input_ids": masked, "labels": labels}


# -- the run -----------------------------------------------------------------------------------
def encode_corpus(texts: Sequence[str], tokenizer, max_len: int) -> Encoded:
    if not texts:
        raise FlexiBertError("the pretraining corpus is empty")
    examples = Examples((tuple(texts),), np.zeros(len(texts), dtype=np.int64), "corpus")
    return encode(examples, tokenizer, max_len)


def new_seed(card: ModelCard, tokenizer, positions: str, seed: int, embeddings: str | Path | None = None):
    """A fresh masked-LM model of ``card``; with ``embeddings`` (a BERT-family checkpoint sharing the
    tokenizer), its word embeddings start from that checkpoint's, projected to the card's width."""
    import torch

    from flexibert.model.configuration_flexibert import FlexiBertConfig
    from flexibert.model.embedding_init import (
        init_word_embeddings,
        read_word_embeddings,
    )
    from flexibert.model.modeling_flexibert import FlexiBertForMaskedLM

    torch.manual_seed(seed)
    config = FlexiBertConfig.from_card(card, vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id,
                                       position_embedding_type=positions)
    model = FlexiBertForMaskedLM(config)
    if embeddings is not None:
        init_word_embeddings(model, read_word_embeddings(embeddings))
    return model


def embedding_seeds(cards: Sequence[ModelCard], tokenizer: str | Path, out_dir: str | Path, embeddings: str | Path,
                    positions: str = "relative_key", *, seed: int = 42) -> list[str]:
    """Seeds without pretraining: each card fresh but for its word embeddings, projected from ``embeddings``;
    saved as ``out_dir/<name>/`` (checkpoint + tokenizer). Returns the checkpoint paths."""
    from flexibert.model.checkpoint import save_checkpoint

    cards = list(dict.fromkeys(cards))
    for card in cards:
        ensure_new(Path(out_dir) / card_name(card))
    tok = load_tokenizer(tokenizer)
    return [str(save_checkpoint(new_seed(card, tok, positions, seed, embeddings), Path(out_dir) / card_name(card),
                                tok)) for card in cards]


def pretrain(cards: Sequence[ModelCard], corpus: Sequence[str], tokenizer: str | Path, out_dir: str | Path,
             config: MlmConfig = MlmConfig(), *, seed: int = 42, num_threads: int | None = None,
             device: str | None = None, embeddings: str | Path | None = None) -> list[PretrainResult]:
    """MLM-pretrain each card on ``corpus``; save ``out_dir/<name>/`` (checkpoint + tokenizer + ``pretrain.json``).

    ``<name>`` is the seed's name for a seed card (``bert-tiny``), else a digest of the card.
    ``device``: a torch device; by default CUDA when available, else the CPU.
    ``embeddings``: start each model's word embeddings from this checkpoint's (:func:`new_seed`).
    """
    import torch

    from flexibert.model.checkpoint import save_checkpoint

    cards = list(dict.fromkeys(cards))  # one checkpoint per distinct card
    for card in cards:
        ensure_new(Path(out_dir) / card_name(card))
    set_threads(num_threads)
    tok = load_tokenizer(tokenizer)
    tok.model_max_length = config.max_seq_len
    data = encode_corpus(corpus, tok, config.max_seq_len)
    results = []
    for card in cards:
        t0 = time.perf_counter()
        model = new_seed(card, tok, config.positions, seed, embeddings)
        model.config.mlm_decode_masked_only = True
        model.to(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        stats = fit(model, data, config.optimization(), seed=seed, pad_id=tok.pad_token_id,
                    prepare=Masker(tok, config.mlm_probability, seed))
        model.config.mlm_decode_masked_only = False  # the saved seed returns (batch, seq, vocab) logits
        out = save_checkpoint(model, Path(out_dir) / card_name(card), tok)
        result = PretrainResult(card=card.to_dict(), checkpoint=str(out), steps=stats.steps,
                                wall_s=time.perf_counter() - t0, tokens_per_s=stats.tokens_per_s,
                                corpus_size=len(corpus), config=asdict(config), curve=stats.curve)
        write_json(out / "pretrain.json", asdict(result))
        results.append(result)
    return results
