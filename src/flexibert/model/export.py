"""Export a trained model as a standard Hugging Face checkpoint that works without this package.

The directory holds the safetensors weights, the tokenizer, and the modelling code
(``configuration_flexibert.py``, ``modeling_flexibert.py``) named in
``config.json``'s ``auto_map``, so plain ``transformers`` loads it with
``AutoModelForSequenceClassification.from_pretrained(DIR, trust_remote_code=True)`` and
``AutoTokenizer.from_pretrained(DIR, trust_remote_code=True)``. The tokenizer needs the flag
too: ``AutoTokenizer`` reads ``config.json`` first and, seeing remote code, would otherwise ask
on stdin and wait 15 s before falling back.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from flexibert._common import FlexiBertError

CODE = ("configuration_flexibert.py", "modeling_flexibert.py")  # copied unchanged
AUTO_MAP = {
    "AutoConfig": "configuration_flexibert.FlexiBertConfig",
    "AutoModel": "modeling_flexibert.FlexiBertModel",
    "AutoModelForSequenceClassification": "modeling_flexibert.FlexiBertForSequenceClassification",
    "AutoModelForMaskedLM": "modeling_flexibert.FlexiBertForMaskedLM",
}


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path, readme: str | None = None) -> Path:
    """Copy a validated FlexiBERT checkpoint into a new directory ``out_dir`` with its remote code.

    ``readme``, when given, is the hub model card (see ``flexibert.report.model_card``), written as
    ``README.md`` in the same atomic step: the directory appears whole or not at all.
    """
    from flexibert._common import atomic_dir, ensure_new
    from flexibert.model.checkpoint import load_checkpoint

    checkpoint = Path(checkpoint)
    ensure_new(Path(out_dir))  # before the slower validation: refuse early, never replace
    _, tokenizer = load_checkpoint(checkpoint)  # validates config, weights and shapes
    if tokenizer is None:
        raise FlexiBertError(f"checkpoint {checkpoint} has no tokenizer beside the model; cannot export it")
    package = Path(__file__).parent
    with atomic_dir(out_dir) as tmp:
        for f in checkpoint.iterdir():
            if f.is_file() and f.name != "config.json":
                shutil.copy2(f, tmp / f.name)
        config = json.loads((checkpoint / "config.json").read_text())
        config["auto_map"] = AUTO_MAP
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        for name in CODE:
            shutil.copy2(package / name, tmp / name)
        if readme is not None:
            (tmp / "README.md").write_text(readme)
    return Path(out_dir)


def predict(model_dir: str | Path, texts: list[str]) -> list[dict]:
    """Label probabilities for each text (a pair is ``"first [SEP] second"``), with plain ``transformers``."""
    model_dir = Path(model_dir)
    if not (model_dir / "config.json").is_file():  # before the heavy imports: a typo fails at once
        raise FlexiBertError(f"{model_dir} is not a model directory (config.json missing)")
    if not texts:
        return []
    import torch
    from safetensors import SafetensorError
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)  # no prompt on stdout
        model = AutoModelForSequenceClassification.from_pretrained(model_dir, trust_remote_code=True).eval()
    except (OSError, ValueError, KeyError, SafetensorError) as e:
        raise FlexiBertError(f"cannot load {model_dir}: {str(e).strip().splitlines()[0]}") from None
    # One text at a time, then padded together: a batch may mix single sentences and pairs.
    encoded = [tok(*t.split(" [SEP] ", 1), truncation=True) for t in texts]
    batch = tok.pad(encoded, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    labels = model.config.id2label
    out = []
    for text, row in zip(texts, logits):
        if row.numel() == 1:
            out.append({"text": text, "score": float(row)})
            continue
        probs = torch.softmax(row, dim=-1).tolist()
        best = int(row.argmax())
        out.append({"text": text, "label": labels.get(best, str(best)), "probabilities": {
            labels.get(i, str(i)): round(p, 6) for i, p in enumerate(probs)}})
    return out
