"""One tokenizer per search: loaded from a hub id, a directory or a WordPiece ``vocab.txt``,
or trained on the task's text and cached, so that every model of a search shares it
(weights can only transfer between models that read the same token ids).

Workers receive a tokenizer *spec* (a path or hub id, see :func:`resolve_tokenizer`)
and load it themselves; loading is cheap, training happens once per cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterable

from flexibert._common import FlexiBertError
from flexibert.train.data import first_line

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# Any real vocabulary is far larger; transformers' BertTokenizerFast(vocab_file=...) silently
# builds one of just the special tokens, which maps every word to [UNK].
_MIN_VOCAB = 100


def default_cache_dir() -> Path:
    """``$FLEXIBERT_CACHE``, else ``$XDG_CACHE_HOME/flexibert`` (``~/.cache/flexibert``)."""
    if os.environ.get("FLEXIBERT_CACHE"):
        return Path(os.environ["FLEXIBERT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "flexibert"


def load_tokenizer(spec: str | Path):
    """A ``transformers`` tokenizer from a WordPiece ``vocab.txt``, a saved directory or a hub id."""
    from transformers import AutoTokenizer, BertTokenizer

    from flexibert.model.checkpoint import load_saved_tokenizer

    path = Path(spec)
    try:
        if path.is_file():
            tok = BertTokenizer(vocab=str(path))
        elif path.is_dir():
            tok = load_saved_tokenizer(path)
        elif isinstance(spec, Path) or str(spec).startswith((".", "/", "~")):
            raise FlexiBertError(f"tokenizer not found: {spec}")
        else:
            tok = AutoTokenizer.from_pretrained(str(spec))
    except FlexiBertError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise FlexiBertError(f"cannot load tokenizer {spec}: {first_line(e)}") from None
    if len(tok) < _MIN_VOCAB:
        raise FlexiBertError(f"tokenizer {spec} has only {len(tok)} tokens; is it a real vocabulary?")
    missing = [name for name in ("cls_token", "sep_token", "pad_token", "mask_token") if getattr(tok, name) is None]
    if missing:
        raise FlexiBertError(f"tokenizer {spec} lacks special token(s) {missing}, which BERT-style models need")
    if tok.model_max_length > 100_000:  # "unlimited": a saved checkpoint's own length is kept
        tok.model_max_length = 512
    return tok


def train_wordpiece(texts: Iterable[str], vocab_size: int = 16384, min_frequency: int = 2):
    """A lowercasing BERT WordPiece tokenizer trained on ``texts``.

    The trainer breaks frequency ties arbitrarily, so ids are made canonical (special
    tokens, then the rest sorted) and callers should cache the result (:func:`cached_wordpiece`).
    """
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers
    from transformers import BertTokenizer

    backend = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, min_frequency=min_frequency,
                                        special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    backend.train_from_iterator(texts, trainer)
    rest = sorted(set(backend.get_vocab()) - set(SPECIAL_TOKENS))
    vocab = {tok: i for i, tok in enumerate((*SPECIAL_TOKENS, *rest))}
    tok = BertTokenizer(vocab=vocab, do_lower_case=True)
    tok.model_max_length = 512
    return tok


def cached_wordpiece(texts: list[str], cache_dir: str | Path | None = None, vocab_size: int = 16384,
                     min_frequency: int = 2) -> Path:
    """Directory of the WordPiece tokenizer for ``texts``, trained on first use (safe in parallel)."""
    import tokenizers

    h = hashlib.sha256(f"{vocab_size}|{min_frequency}|{tokenizers.__version__}\n".encode())
    for t in texts:
        h.update(t.encode())
        h.update(b"\n")
    out = Path(cache_dir or default_cache_dir()) / "tokenizers" / f"wordpiece-{h.hexdigest()[:16]}"
    if (out / "tokenizer.json").exists():
        return out
    if not texts:
        raise FlexiBertError("cannot train a tokenizer on an empty corpus")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        train_wordpiece(texts, vocab_size, min_frequency).save_pretrained(str(tmp))
        try:
            os.rename(tmp, out)  # atomic; a process that lost the race keeps the winner's copy
        except OSError:
            if not (out / "tokenizer.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def resolve_tokenizer(spec: str | Path | None, texts: Iterable[str] | None = None,
                      cache_dir: str | Path | None = None) -> str:
    """The spec workers load: ``spec`` itself, or (``None``) a WordPiece trained on ``texts``."""
    if spec is not None:
        return str(spec)
    if texts is None:
        raise FlexiBertError("no tokenizer given and no text to train one on")
    return str(cached_wordpiece(list(texts), cache_dir))


def tokenizer_digest(tok) -> str:
    """Digest of the full tokenizer pipeline (vocab, normalizer, ...): a key for encoded-data caches."""
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:  # a pure-Python tokenizer: its class and vocabulary
        text = json.dumps([type(tok).__name__, sorted(tok.get_vocab().items())])
        return hashlib.sha256(text.encode()).hexdigest()[:16]
    pipeline = json.loads(backend.to_str())
    for runtime in ("truncation", "padding"):  # set per call, not part of what the tokenizer is
        pipeline.pop(runtime, None)
    return hashlib.sha256(json.dumps(pipeline, sort_keys=True).encode()).hexdigest()[:16]
