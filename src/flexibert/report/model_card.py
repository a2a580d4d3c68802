"""The ``README.md`` a Hugging Face hub shows for an exported model: metadata, architecture, scores, usage.

A user pushing the exported directory expects the hub's front matter (library,
pipeline, tags, metrics) and enough text to judge the model without this package:
its block graph, what it was trained on, how it compares with the reference it was
cut from, how fast it runs, and the two lines that load it.
"""

from __future__ import annotations

from typing import Any, Mapping

import yaml

from flexibert._common import FlexiBertError
from flexibert.report.data import (
    LATENCY_KEYS,
    MODEL_KEYS,
    MODEL_OPTIONAL,
    baseline_standing,
    checked_baseline,
    checked_mapping,
    checked_numbers,
    confirmed_model,
)
from flexibert.report.labels import giga, kept, layer_lines, millions, percent, times

INFO_KEYS: tuple[str, ...] = (*MODEL_KEYS, "task", "data")
OPTIONAL_KEYS: tuple[str, ...] = (*MODEL_OPTIONAL, "reference", "retention", "speedup", "baseline", "metric")


def _score(m: Mapping[str, Any], key: str) -> str:
    spread = f" ± {m['dev_sd']:.4f}" if key == "dev" and "dev_sd" in m else ""
    seeds = f" (mean of {m['n_seeds']} training seeds)" if spread and "n_seeds" in m else ""
    return f"{m[key]:.4f}{spread}{seeds}"


def model_card(info: Mapping[str, Any]) -> str:
    """The markdown of a hub model card for the model ``info`` describes (the keys of ``Answer.winner``
    plus ``task``, ``data`` and, when known, ``reference``, ``retention``, ``speedup``, ``baseline``, ``metric``)."""
    info = checked_mapping("model card", info, INFO_KEYS, OPTIONAL_KEYS)
    model = confirmed_model("model card", {k: v for k, v in info.items() if k in (*MODEL_KEYS, *MODEL_OPTIONAL)})
    reference = None if info.get("reference") is None else confirmed_model("model card.reference", info["reference"])
    retention = checked_numbers("model card.retention", info.get("retention"), ("dev", "validation"), ("dev_ci95",))
    speedup = checked_numbers("model card.speedup", info.get("speedup"), LATENCY_KEYS)
    baseline = checked_baseline("model card.baseline", info.get("baseline"))
    task, data, metric = str(info["task"]), str(info["data"]), str(info.get("metric") or "accuracy")
    if not task.strip():
        raise FlexiBertError("report data: 'model card.task' must be a non-empty string")
    card = model["card"]
    front = {
        "library_name": "transformers",
        "pipeline_tag": "text-classification",
        "tags": ["flexibert", "text-classification", "neural-architecture-search", task.lower()],
        "metrics": [metric],
    }
    name = model.get("name") or f"FlexiBERT {card}"
    parts = ["---", yaml.safe_dump(front, sort_keys=False).strip(), "---", "", f"# {name}", ""]
    summary = f"A heterogeneous FlexiBERT encoder found by architecture search for **{task}**"
    if reference is not None and retention is not None:
        ref_name = reference.get("name", str(reference["card"]))
        summary += (f": it keeps {kept(retention)} of {ref_name}'s dev {metric} with "
                    f"{times(model['params'] / reference['params'])} its parameters")
    parts += [summary + ".", ""]
    parts += ["## Architecture", "", f"Card `{card}`: {millions(model['params'])} parameters, "
              f"{giga(model['flops'])} forward FLOPs at sequence length 128.", "", "```"]
    parts += layer_lines(card) + ["```", ""]
    parts += ["## Training data", "", f"Task: {task}. {data}", ""]
    parts += ["## Results", "", f"| model | validation {metric} | dev {metric} | params | FLOPs |",
              "| --- | --- | --- | --- | --- |",
              f"| this model | {_score(model, 'validation')} | {_score(model, 'dev')} | {millions(model['params'])} "
              f"| {giga(model['flops'])} |"]
    if reference is not None:
        parts.append(f"| reference: {reference.get('name', str(reference['card']))} | {_score(reference, 'validation')}"
                     f" | {_score(reference, 'dev')} | {millions(reference['params'])} | {giga(reference['flops'])} |")
    if baseline is not None:
        parts.append(f"| baseline: {baseline['name']} | {baseline['validation']:.4f} | {baseline['dev']:.4f} "
                     "| – | – |")
    parts.append("")
    if retention is not None:
        parts += [f"Retention of the reference's {metric}: {kept(retention)} on dev, "
                  f"{percent(retention['validation'])} on validation.", ""]
    standing = None if baseline is None else baseline_standing(model, baseline)
    if standing == "as good":
        parts += [f"{baseline['name']} does as well on dev: a bag of words is enough for this task.", ""]
    elif standing == "unsettled":
        parts += [f"{baseline['name']} does as well on validation, though not on dev: whether this model beats "
                  "a bag of words on this task is not settled.", ""]
    if model["latency_ms"] is not None:
        latency = model["latency_ms"]
        parts += ["## Latency", "", f"Measured on the search's machine at sequence length 128: "
                  f"{latency['batch_1']:.2f} ms at batch 1, {latency['batch_32']:.2f} ms at batch 32."]
        if speedup is not None:
            parts.append(f"That is {times(speedup['batch_1'])} faster than the reference at batch 1 and "
                         f"{times(speedup['batch_32'])} at batch 32.")
        parts.append("")
    parts += [
        "## How to use",
        "",
        "The modelling code ships in this directory, so loading it needs `trust_remote_code=True`:",
        "",
        "```python",
        "from transformers import AutoModelForSequenceClassification, AutoTokenizer",
        "",
        'DIR = "path/or/hub-id/of/this/model"',
        "tokenizer = AutoTokenizer.from_pretrained(DIR, trust_remote_code=True)",
        "model = AutoModelForSequenceClassification.from_pretrained(DIR, trust_remote_code=True)",
        'logits = model(**tokenizer(["a fine film"], return_tensors="pt")).logits',
        "```",
        "",
    ]
    return "\n".join(parts)
