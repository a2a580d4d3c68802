"""Import a Hugging Face BERT checkpoint as a FlexiBERT checkpoint (``flexibert import-bert``).

A BERT of L layers, H width, A heads and F feed-forward becomes the homogeneous
all-SDP card ``ModelCard.homogeneous(L, A, H, F)``. Positions stay ``absolute`` by
default, which makes the FlexiBERT model compute exactly what the BERT computed
(the parity test checks the logits). With ``relative_key`` the BERT position table
has no counterpart and the new relative tables start from their initialisation;
both are reported. A sentence-transformers checkpoint (``1_Pooling/config.json``) keeps its
mean pooling as ``classifier_pooling``: read through a [CLS] it was never trained to fill, its
smaller children stall at the majority class. Its declared input length (``sentence_bert_config.json``)
becomes the tokenizer's ``model_max_length``, which caps a run's sequence length. Our parameter names
mirror BERT's, so the mapping is by name; the head follows the checkpoint (classifier, masked-LM, or
none) unless ``head`` says.
Weights are read from safetensors only, never unpickled.
"""

from __future__ import annotations

import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from flexibert._common import FlexiBertError, atomic_dir, read_json, write_json
from flexibert.model.checkpoint import CONFIG, WEIGHTS
from flexibert.model.configuration_flexibert import (
    POOLINGS,
    POSITION_EMBEDDING_TYPES,
    FlexiBertConfig,
)
from flexibert.model.modeling_flexibert import (
    FlexiBertForMaskedLM,
    FlexiBertForSequenceClassification,
    FlexiBertModel,
)
from flexibert.space.design_space import ModelCard

HEADS = {
    "base": FlexiBertModel,
    "sequence-classification": FlexiBertForSequenceClassification,
    "masked-lm": FlexiBertForMaskedLM,
}
TOKENIZER_FILES = (
    "vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
)  # fmt: skip
SENTENCE_POOLING = "1_Pooling/config.json"  # sentence-transformers: how the encoder's output is read
SENTENCE_CONFIG = "sentence_bert_config.json"  # sentence-transformers: the input length the encoder is used at
_HUB_ID = re.compile(r"^[\w.-]+(/[\w.-]+)?$")
# BERT head names -> ours; everything under the base model maps to itself.
_HEAD_NAMES = {
    "cls.predictions.transform.dense.": "lm_head.dense.",
    "cls.predictions.transform.LayerNorm.": "lm_head.LayerNorm.",
    "cls.predictions.decoder.": "lm_head.decoder.",
    "cls.predictions.bias": "lm_head.decoder.bias",
    "classifier.": "classifier.",
}


@dataclass(frozen=True)
class ImportReport:
    out_dir: Path
    card: ModelCard
    model_class: str
    mapped: tuple[tuple[str, str], ...]  # (BERT tensor, FlexiBERT tensor)
    unmapped_source: tuple[str, ...]  # BERT tensors with no counterpart (dropped)
    unmapped_target: tuple[str, ...]  # FlexiBERT tensors with no counterpart (left at initialisation)
    pooling: str = "cls"  # what the classifier reads: the checkpoint's own pooling


PACKAGE_SCHEME = "package:"


def _package_dir(spec: str) -> Path:
    """``package:NAME/sub/dir``: a checkpoint shipped inside an installed Python package (no machine paths)."""
    import importlib.resources

    name, _, sub = spec.removeprefix(PACKAGE_SCHEME).partition("/")
    try:
        root = importlib.resources.files(name)
    except ModuleNotFoundError:
        raise FlexiBertError(f"checkpoint {spec}: Python package {name!r} is not installed") from None
    path = Path(str(root.joinpath(sub))) if sub else Path(str(root))
    if not path.is_dir():
        raise FlexiBertError(f"checkpoint {spec}: package {name!r} has no directory {sub!r}")
    return path


def resolve_source(path_or_hub_id: str) -> Path:
    """A local directory, ``package:NAME/dir`` inside an installed package, or a hub id fetched
    (config, safetensors and tokenizer files only)."""
    if str(path_or_hub_id).startswith(PACKAGE_SCHEME):
        return _package_dir(str(path_or_hub_id))
    path = Path(path_or_hub_id).expanduser()
    if path.is_dir():
        return path
    if path.exists() or not _HUB_ID.match(path_or_hub_id):
        raise FlexiBertError(f"BERT checkpoint not found: {path_or_hub_id} is not a directory or a hub id")
    from huggingface_hub import snapshot_download

    try:
        return Path(
            snapshot_download(
                path_or_hub_id,
                allow_patterns=[CONFIG, "*.safetensors", SENTENCE_POOLING, SENTENCE_CONFIG, *TOKENIZER_FILES],
            )
        )
    except Exception as e:  # offline, unknown repo, network: all one message
        raise FlexiBertError(
            f"BERT checkpoint not found: no local directory {path_or_hub_id} and cannot fetch it: {e}"
        ) from None


def _read_bert(src: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    file = src / CONFIG
    cfg = read_json(file, f"no {CONFIG} in BERT checkpoint {src}")
    model_type = cfg.get("model_type") if isinstance(cfg, dict) else None
    if model_type != "bert":
        raise FlexiBertError(f"{file}: not a BERT config (model_type {model_type!r})")
    weights = src / WEIGHTS
    if not weights.is_file():
        pickled = " (it has only pickled *.bin weights, which are never unpickled)" if any(src.glob("*.bin")) else ""
        raise FlexiBertError(f"no {WEIGHTS} in BERT checkpoint {src}{pickled}")
    try:
        tensors = load_file(str(weights))
    except (SafetensorError, OSError) as e:
        raise FlexiBertError(f"corrupt safetensors file {weights}: {e}") from None
    return cfg, tensors


def checkpoint_pooling(src: Path) -> str:
    """``mean`` for a sentence-transformers checkpoint pooled by its mean token, else BERT's ``cls``."""
    file = src / SENTENCE_POOLING
    if not file.is_file():
        return "cls"
    modes = read_json(file, f"no {SENTENCE_POOLING} in {src}")
    if not isinstance(modes, dict):
        raise FlexiBertError(f"{file}: expected a JSON object")
    means = modes.get("pooling_mode_mean_tokens") or modes.get("pooling_mode_mean_sqrt_len_tokens")
    return "mean" if means else "cls"


def checkpoint_max_length(src: Path) -> int | None:
    """The input length a sentence-transformers checkpoint declares (``max_seq_length``; all-MiniLM-L6-v2: 256),
    past which it truncates every text it is used on; ``None`` when it declares none."""
    file = src / SENTENCE_CONFIG
    if not file.is_file():
        return None
    cfg = read_json(file, f"no {SENTENCE_CONFIG} in {src}")
    length = cfg.get("max_seq_length") if isinstance(cfg, dict) else None
    if length is None:
        return None
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        raise FlexiBertError(f"{file}: max_seq_length must be a positive integer, got {length!r}")
    return length


def _card_config(bert: dict, position_embedding_type: str, num_labels: int | None, pooling: str) -> FlexiBertConfig:
    if bert.get("position_embedding_type", "absolute") != "absolute":
        raise FlexiBertError(
            f"BERT with {bert['position_embedding_type']!r} positions cannot be imported (absolute only)"
        )
    if bert.get("hidden_act", "gelu") != "gelu":
        raise FlexiBertError(f"BERT hidden_act {bert['hidden_act']!r} is not supported (gelu only)")
    try:
        card = ModelCard.homogeneous(
            bert.get("num_hidden_layers", 12),
            bert.get("num_attention_heads", 12),
            bert.get("hidden_size", 768),
            bert.get("intermediate_size", 3072),
        )
    except FlexiBertError as e:
        raise FlexiBertError(f"BERT config does not form a card: {e}") from None
    keep = (
        "vocab_size", "type_vocab_size", "max_position_embeddings", "layer_norm_eps", "hidden_dropout_prob",
        "attention_probs_dropout_prob", "classifier_dropout", "initializer_range", "pad_token_id",
        "id2label", "label2id", "problem_type", "tie_word_embeddings",
    )  # fmt: skip
    kwargs = {k: bert[k] for k in keep if k in bert}
    if num_labels is not None:
        kwargs["num_labels"] = num_labels
        if len(kwargs.get("id2label") or {}) != num_labels:
            kwargs.pop("id2label", None)
            kwargs.pop("label2id", None)
    return FlexiBertConfig.from_card(card, position_embedding_type=position_embedding_type,
                                     classifier_pooling=pooling, **kwargs)


def _target_name(bert_name: str, prefix: str) -> str:
    name = bert_name.removeprefix("bert.")
    name = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", name))
    for old, new in _HEAD_NAMES.items():
        if name.startswith(old):
            return new + name[len(old) :]
    return prefix + name


def import_bert(
    path_or_hub_id: str | Path,
    out_dir: str | Path,
    head: str = "auto",
    position_embedding_type: str = "absolute",
    pooling: str | None = None,
) -> ImportReport:
    """Convert a BERT checkpoint into a FlexiBERT checkpoint in the new directory ``out_dir``.

    ``head``: ``auto`` (a classifier if the checkpoint has one, else masked-LM if it has an
    MLM head, else the base model), or one of ``base``, ``sequence-classification``, ``masked-lm``.
    ``pooling``: ``cls`` or ``mean``; by default the checkpoint's own (:func:`checkpoint_pooling`).
    """
    if head != "auto" and head not in HEADS:
        raise FlexiBertError(f"unknown head {head!r}; expected auto or one of {list(HEADS)}")
    if position_embedding_type not in POSITION_EMBEDDING_TYPES:
        raise FlexiBertError(
            f"unknown position embeddings {position_embedding_type!r}; expected one of {list(POSITION_EMBEDDING_TYPES)}"
        )
    if pooling is not None and pooling not in POOLINGS:
        raise FlexiBertError(f"unknown pooling {pooling!r}; expected one of {list(POOLINGS)}")
    out_dir = Path(out_dir)
    with atomic_dir(out_dir) as tmp:  # refuses an existing non-empty out_dir before any work
        src = resolve_source(str(path_or_hub_id))
        bert, tensors = _read_bert(src)
        if head == "auto":
            names = [n.removeprefix("bert.") for n in tensors]
            head = (
                "sequence-classification"
                if any(n.startswith("classifier.") for n in names)
                else "masked-lm"
                if any(n.startswith("cls.predictions.") for n in names)
                else "base"
            )
        model_class = HEADS[head]
        clf = tensors.get("classifier.weight", tensors.get("bert.classifier.weight"))
        num_labels = clf.shape[0] if head == "sequence-classification" and clf is not None else None
        config = _card_config(bert, position_embedding_type, num_labels, pooling or checkpoint_pooling(src))
        model = model_class(config)
        prefix = "" if model_class is FlexiBertModel else f"{model.base_model_prefix}."
        targets = model.state_dict()
        aliases = {}  # a tied decoder weight is the word embedding table under a second name
        if model_class is FlexiBertForMaskedLM and config.tie_word_embeddings:
            aliases["lm_head.decoder.weight"] = f"{prefix}embeddings.word_embeddings.weight"
        pairs: list[tuple[str, str]] = []
        loaded: dict[str, str] = {}  # target -> source
        unmapped_source = []
        for name, tensor in tensors.items():
            target = _target_name(name, prefix)
            if target not in targets:
                unmapped_source.append(name)
                continue
            if tuple(tensor.shape) != tuple(targets[target].shape):
                raise FlexiBertError(
                    f"BERT tensor {name} has shape {list(tensor.shape)} but the card {config.card} needs "
                    f"{list(targets[target].shape)} (its config.json does not match its weights)"
                )
            real = aliases.get(target, target)
            if real in loaded and not torch.equal(tensors[loaded[real]], tensor):
                raise FlexiBertError(f"BERT tensors {loaded[real]} and {name} should be tied but differ")
            loaded.setdefault(real, name)
            pairs.append((name, target))
        model.load_state_dict({t: tensors[s] for t, s in loaded.items()}, strict=False)
        unmapped_target = [t for t in targets if aliases.get(t, t) not in loaded]
        model.save_pretrained(tmp)
        for f in TOKENIZER_FILES:
            if (src / f).is_file():
                shutil.copyfile(src / f, tmp / f)
        length = checkpoint_max_length(src)
        if length is not None and (tmp / "tokenizer_config.json").is_file():  # the tokenizer carries the length
            tok = read_json(tmp / "tokenizer_config.json", "no tokenizer_config.json")
            tok["model_max_length"] = min(length, tok.get("model_max_length") or length)
            write_json(tmp / "tokenizer_config.json", tok)
    return ImportReport(
        out_dir=out_dir,
        card=config.card,
        model_class=model_class.__name__,
        mapped=tuple(pairs),
        unmapped_source=tuple(unmapped_source),
        unmapped_target=tuple(unmapped_target),
        pooling=config.classifier_pooling,
    )
