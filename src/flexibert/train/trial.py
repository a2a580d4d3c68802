"""Fine-tune one card on one task: :func:`train_trial`, the single entry point of search workers.

A trial is a pure function of its :class:`TrialSpec`: the data source, tokenizer and
initial checkpoint travel as paths (``Path``/``str`` or the small dataclasses of
:mod:`flexibert.train.data`), never as live objects, and everything it writes goes to
its own ``workdir`` (plus content-keyed caches that parallel trials can share).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flexibert._common import FlexiBertError, write_json
from flexibert.model.checkpoint import (
    WEIGHTS,
    load_checkpoint,
    load_config,
    save_checkpoint,
    tensor_shapes,
)
from flexibert.model.configuration_flexibert import POOLINGS, POSITION_EMBEDDING_TYPES
from flexibert.model.importance import inheritance_scores
from flexibert.model.overlap import check_ffn_select, check_layer_map, transfer_plan
from flexibert.space.design_space import ModelCard
from flexibert.train.batching import Encoded, batches
from flexibert.train.data import DataSource, HFDataset, as_source, train_texts
from flexibert.train.distill import Distillation, distill_objective
from flexibert.train.encoding_cache import VALIDATION, encoded_split
from flexibert.train.holdout import Holdout, check_subset_draw
from flexibert.train.loop import evaluate, fit, set_threads, split_metrics
from flexibert.train.profiles import TrainProfile, get_profile
from flexibert.train.tasks import Task, get_task
from flexibert.train.tokenization import (
    default_cache_dir,
    load_tokenizer,
    resolve_tokenizer,
)

IMPORTANCE_BATCHES = 8  # training batches (of the profile's size) that score a source's FFN neurons


@dataclass(frozen=True)
class TrialSpec:
    """Everything a trial depends on, as small picklable values.

    ``card``, ``task``, ``profile``, ``data``, ``init`` and ``cache_dir`` may also be given the way a
    user writes them (a card dict, a task or profile name, a data directory or hub id, path strings);
    they are converted on construction, so a bad one fails here.
    ``init``: a checkpoint to start from by weight transfer (None: from scratch).
    ``tokenizer``: a spec for :func:`load_tokenizer`; by default the init checkpoint's, else a WordPiece
    trained on the task's training text and cached in ``cache_dir`` (default :func:`default_cache_dir`).
    ``device``: a torch device; by default CUDA when available, else the CPU.
    ``positions``: the position scheme (``absolute`` or ``relative_key``); by default the init
    checkpoint's own (a pretrained encoder keeps its scheme), else ``relative_key``.
    ``pooling``: what the classifier reads (``cls`` or ``mean``); by default the init checkpoint's own
    (a sentence-transformers encoder is read by its mean token), else ``cls``.
    ``holdout``: carve a validation split out of train (a :class:`~flexibert.train.holdout.Holdout`, or its
    size, drawn leak-free); the trial's ``score`` is then its validation score, and dev is only reported.
    ``subset``: how the profile's ``max_train_samples`` are drawn: ``random``, or ``whole-first`` (whole texts
    before the parts of others, :func:`~flexibert.train.holdout.whole_first`).
    ``distill``: learn from a fine-tuned teacher too (a :class:`~flexibert.train.distill.Distillation`,
    its mapping, or just the teacher's path).
    ``layer_map``: which source layer each layer inherits from (``bottom`` or ``uniform``, see
    :mod:`flexibert.model.overlap`). ``ffn_select``: which source neurons a narrower FFN keeps
    (``importance``, ``magnitude`` or ``first``, see :mod:`flexibert.model.importance`); ``importance`` by
    default, the best on validation in ``bench/inheritance.py``.
    """

    card: ModelCard
    task: Task
    profile: TrainProfile
    init: Path | None = None
    data: DataSource = field(default_factory=HFDataset)
    tokenizer: str | None = None
    seed: int = 42
    num_threads: int | None = None
    cache_dir: Path | None = None
    device: str | None = None
    positions: str | None = None
    pooling: str | None = None
    holdout: Holdout | None = None
    subset: str = "random"
    layer_map: str = "bottom"
    ffn_select: str = "importance"
    distill: Distillation | None = None

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        put("card", self.card if isinstance(self.card, ModelCard) else ModelCard.from_dict(self.card))
        put("task", get_task(self.task))
        put("profile", get_profile(self.profile))
        put("data", as_source(self.data))
        put("init", None if self.init is None else Path(self.init))
        put("tokenizer", None if self.tokenizer is None else str(self.tokenizer))
        put("cache_dir", None if self.cache_dir is None else Path(self.cache_dir))
        put("distill", None if self.distill is None else Distillation.of(self.distill))
        if self.positions is not None and self.positions not in POSITION_EMBEDDING_TYPES:
            raise FlexiBertError(f"positions must be one of {list(POSITION_EMBEDDING_TYPES)}, got {self.positions!r}")
        if self.pooling is not None and self.pooling not in POOLINGS:
            raise FlexiBertError(f"pooling must be one of {list(POOLINGS)}, got {self.pooling!r}")
        put("holdout", Holdout.of(self.holdout))
        check_subset_draw(self.subset)
        check_layer_map(self.layer_map)
        check_ffn_select(self.ffn_select)


@dataclass
class TrialResult:
    """What a trial measured; ``result.json`` in the workdir holds exactly this."""

    card: dict[str, Any]
    task: str
    metrics: dict[str, float]
    score: float  # the task's GLUE score (mean of its metrics): on validation when there is one, else on dev
    steps: int
    wall_s: float
    train_s: float
    tokens_per_s: float
    num_train: int
    checkpoint: str
    source_checkpoint: str | None
    overlap: float
    seed: int
    tokenizer: str
    profile: dict[str, Any]
    curve: list[dict[str, float]] = field(default_factory=list)
    validation: dict[str, float] | None = None  # metrics on the holdout carved from train

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def load(cls, path: str | Path) -> "TrialResult":
        path = Path(path)
        try:
            d = json.loads(path.read_text())
            return cls(**d)
        except FileNotFoundError:
            raise FlexiBertError(f"trial result not found: {path}") from None
        except (json.JSONDecodeError, TypeError) as e:
            raise FlexiBertError(f"trial result {path} is malformed: {e}") from None


def task_tokenizer(task: Task, source: DataSource, tokenizer: str | Path | None, init: Path | None,
                   cache_dir: Path) -> str:
    """The tokenizer spec of a trial: the given one, the init checkpoint's, or one trained on the task's text."""
    if tokenizer is None and init is not None and (init / "tokenizer.json").exists():
        return str(init)
    if tokenizer is not None:
        return str(tokenizer)
    return resolve_tokenizer(None, train_texts(source, task), cache_dir)


def build_classifier(card: ModelCard, tokenizer, num_labels: int, seed: int, labels: tuple[str, ...] | None = None,
                     positions: str = "relative_key", pooling: str = "cls"):
    """A fresh FlexiBERT classifier for ``card``, initialised from ``seed``, sized to the tokenizer.

    ``labels`` name the classes in ``config.id2label``, so an exported model predicts real label names.
    """
    import torch

    from flexibert.model.configuration_flexibert import FlexiBertConfig
    from flexibert.model.modeling_flexibert import FlexiBertForSequenceClassification

    torch.manual_seed(seed)
    names = {"id2label": dict(enumerate(labels)), "label2id": {v: i for i, v in enumerate(labels)}} if labels else {}
    config = FlexiBertConfig.from_card(card, vocab_size=len(tokenizer), num_labels=num_labels,
                                       pad_token_id=tokenizer.pad_token_id, position_embedding_type=positions,
                                       classifier_pooling=pooling, **names)
    return FlexiBertForSequenceClassification(config)


def check_init_vocab(init: Path, init_config, tokenizer) -> None:
    """Before any work: token ids mean nothing across vocabularies, so weights could not transfer."""
    vocab = init_config.vocab_size
    if vocab != len(tokenizer):
        raise FlexiBertError(
            f"checkpoint {init}: vocabulary of {vocab} tokens, but the tokenizer has {len(tokenizer)}; "
            "a search must use the tokenizer its seeds were trained with"
        )


def _transfer_from(model, spec: TrialSpec, train: Encoded, pad_id: int, device: str) -> float:
    """Weight transfer from ``spec.init``; neurons of a narrower FFN are scored on a few seeded training batches,
    through the source's classifier when its checkpoint has one for this task."""
    from flexibert.model.transfer import transfer_weights

    weights = spec.init / WEIGHTS
    has_head = weights.is_file() and "classifier.weight" in tensor_shapes(weights)
    source, _ = load_checkpoint(spec.init, head="classification" if has_head else "base")
    plan = transfer_plan(model.config.card, source.config.card, model.config.arch_dims, spec.layer_map)
    scores = None
    if plan.pruned and spec.ffn_select != "first":
        rng = np.random.default_rng(spec.seed)
        scored = [b for _, b in itertools.islice(batches(train, spec.profile.batch_size, pad_id, rng),
                                                 IMPORTANCE_BATCHES)]
        scores = inheritance_scores(source.to(device), spec.ffn_select, scored, spec.task.num_labels)
    return float(transfer_weights(model, source, spec.layer_map, scores).fraction)


def train_trial(spec: TrialSpec, workdir: str | Path) -> TrialResult:
    """Fine-tune ``spec.card`` on ``spec.task`` (from ``spec.init`` by weight transfer, or from scratch)
    and evaluate it on dev.

    Writes ``workdir/checkpoint`` (safetensors, config, tokenizer) and ``workdir/result.json``, both atomically.
    """
    import torch

    from flexibert._common import ensure_new

    t0 = time.perf_counter()
    task, source, prof, init = spec.task, spec.data, spec.profile, spec.init
    workdir, cache = Path(workdir), Path(spec.cache_dir or default_cache_dir())
    if init is not None and not init.is_dir():
        raise FlexiBertError(f"init checkpoint not found: {init}")
    for out in (workdir / "checkpoint", workdir / "result.json"):
        ensure_new(out)
    set_threads(spec.num_threads)

    tok_spec = task_tokenizer(task, source, spec.tokenizer, init, cache)
    tok = load_tokenizer(tok_spec)
    init_config = load_config(init) if init is not None else None
    if init_config is not None:
        check_init_vocab(init, init_config, tok)
    tok.model_max_length = prof.max_seq_len  # saved with the checkpoint: evaluation reuses the length
    train = encoded_split(source, task, "train", tok, prof.max_seq_len, cache, prof.max_train_samples, spec.holdout,
                          spec.subset)
    dev = {s: encoded_split(source, task, s, tok, prof.max_seq_len, cache) for s in task.dev_splits}
    positions = spec.positions or (init_config.position_embedding_type if init_config else "relative_key")
    pooling = spec.pooling or (init_config.classifier_pooling if init_config else "cls")

    model = build_classifier(spec.card, tok, task.num_labels, spec.seed, task.labels, positions, pooling)
    device = spec.device or ("cuda" if torch.cuda.is_available() else "cpu")
    overlap = _transfer_from(model, spec, train, tok.pad_token_id, device) if init is not None else 0.0
    model.to(device)
    objective = None if spec.distill is None else distill_objective(
        spec.distill, source, task, train, tok, spec.card.h, cache, prof.max_train_samples, spec.holdout, device,
        spec.subset)
    torch.manual_seed(spec.seed)  # dropout masks: the same whether or not a transfer happened
    stats = fit(model, train, prof.optimization(), seed=spec.seed, pad_id=tok.pad_token_id, objective=objective)
    metrics = evaluate(model, task, dev, tok.pad_token_id, prof.eval_batch_size)
    validation = None
    if spec.holdout:
        val = encoded_split(source, task, VALIDATION, tok, prof.max_seq_len, cache, holdout=spec.holdout)
        validation = split_metrics(model, task, val, tok.pad_token_id, prof.eval_batch_size)
    checkpoint = save_checkpoint(model, workdir / "checkpoint", tok)
    result = TrialResult(
        card=spec.card.to_dict(), task=task.name, metrics=metrics, score=task.score(validation or metrics),
        steps=stats.steps,
        wall_s=time.perf_counter() - t0, train_s=stats.train_s, tokens_per_s=stats.tokens_per_s, num_train=len(train),
        checkpoint=str(checkpoint), source_checkpoint=str(init) if init else None, overlap=overlap,
        seed=spec.seed, tokenizer=tok_spec, profile=dataclasses.asdict(prof), curve=stats.curve, validation=validation,
    )
    write_json(workdir / "result.json", result.to_dict())
    return result


def evaluate_checkpoint(path: str | Path, task: str | Task, data: DataSource | str | Path | None = None, *,
                        max_seq_len: int | None = None, cache_dir: str | Path | None = None,
                        num_threads: int | None = None) -> dict[str, float]:
    """Dev metrics of a saved fine-tuned checkpoint (its own tokenizer and sequence length)."""
    set_threads(num_threads)
    task, source = get_task(task), as_source(data)
    model, tok = load_checkpoint(path)
    if tok is None:
        raise FlexiBertError(f"checkpoint {path}: no tokenizer saved beside the model")
    if model.config.num_labels != task.num_labels:
        raise FlexiBertError(
            f"checkpoint {path}: has {model.config.num_labels} labels, task {task.name} has {task.num_labels}"
        )
    max_len = max_seq_len or tok.model_max_length
    cache = Path(cache_dir or default_cache_dir())
    dev = {s: encoded_split(source, task, s, tok, max_len, cache) for s in task.dev_splits}
    return evaluate(model, task, dev, tok.pad_token_id)
