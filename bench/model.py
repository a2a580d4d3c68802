"""Training-step time of FlexiBERT against Hugging Face BERT of the same shape, in one process.

A step is forward + backward of a sequence classifier (batch 32, sequence 128, random
tokens, dropout on). Models are measured interleaved (one step each, round robin)
after a warm-up; a ratio is the median over rounds of the per-round ratio, so drifts
in machine load hit both sides alike.
The headline ratio is FlexiBERT's default (relative_key positions) over HF
``BertForSequenceClassification`` (absolute positions, SDPA); FlexiBERT with absolute
positions is printed too, as the like-for-like figure.

Run: ``python bench/model.py [--rounds N] [--threads T] [--device cpu|cuda]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
from _common import summary  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification  # noqa: E402

from flexibert.model.configuration_flexibert import FlexiBertConfig  # noqa: E402
from flexibert.model.modeling_flexibert import FlexiBertForSequenceClassification  # noqa: E402
from flexibert.space.design_space import ModelCard  # noqa: E402

BATCH, SEQ = 32, 128
SHAPES = {
    "tiny": ModelCard.homogeneous(2, 2, 128, 512),
    "mini": ModelCard.homogeneous(4, 4, 256, 1024),
    "hetero": ModelCard(
        l=4, a=(2, 2, 4, 4), h=(128, 128, 256, 256), f=(512, 1024, 1024, 2048), s=("sdp", "wma", "sdp", "wma")
    ),
}


def hf_twin(card: ModelCard) -> BertForSequenceClassification:
    """HF BERT, homogeneous at the card's widest layer (its last widest, for the largest f)."""
    j = max(range(card.l), key=lambda i: (card.h[i], card.f[i]))
    cfg = BertConfig(
        num_hidden_layers=card.l,
        hidden_size=card.h[j],
        num_attention_heads=card.a[j],
        intermediate_size=card.f[j],
        num_labels=2,
        attn_implementation="sdpa",
    )
    return BertForSequenceClassification(cfg)


def step(model: torch.nn.Module, batch: dict) -> float:
    model.zero_grad(set_to_none=True)
    t0 = time.perf_counter()
    model(**batch).loss.backward()
    if batch["input_ids"].is_cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


def measure(models: dict[str, torch.nn.Module], batch: dict, rounds: int, warmup: int = 2) -> dict[str, list[float]]:
    """Step times per model, one step each per round (round robin), after ``warmup`` rounds."""
    times: dict[str, list[float]] = {k: [] for k in models}
    for r in range(warmup + rounds):
        for name, model in models.items():
            t = step(model, batch)
            if r >= warmup:
                times[name].append(t)
    return times


def paired_ratio(ours: list[float], theirs: list[float]) -> float:
    """Median over rounds of the per-round ratio: steps of one round ran seconds apart, under
    the same machine load, so the ratio cancels most of the load that the raw times carry."""
    return statistics.median(a / b for a, b in zip(ours, theirs))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dev = torch.device(args.device)
    figures: dict[str, float | str] = {"device": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"}
    for shape, card in SHAPES.items():
        models = {
            "ours_relative": FlexiBertForSequenceClassification(FlexiBertConfig.from_card(card)),
            "ours_absolute": FlexiBertForSequenceClassification(
                FlexiBertConfig.from_card(card, position_embedding_type="absolute")
            ),
            "hf_bert": hf_twin(card),
        }
        for m in models.values():
            m.to(dev).train()
        batch = {
            "input_ids": torch.randint(1, 30522, (BATCH, SEQ), device=dev),
            "attention_mask": torch.ones(BATCH, SEQ, dtype=torch.long, device=dev),
            "labels": torch.randint(0, 2, (BATCH,), device=dev),
        }
        times = measure(models, batch, args.rounds)
        med = {k: statistics.median(v) for k, v in times.items()}
        ratio = paired_ratio(times["ours_relative"], times["hf_bert"])
        ratio_abs = paired_ratio(times["ours_absolute"], times["hf_bert"])
        print(
            f"{shape:7s} {card}: median step ours(relative) {med['ours_relative'] * 1e3:7.1f} ms  "
            f"ours(absolute) {med['ours_absolute'] * 1e3:7.1f} ms  HF BERT {med['hf_bert'] * 1e3:7.1f} ms  "
            f"ratio {ratio:.3f} (absolute {ratio_abs:.3f})",
            flush=True,
        )
        figures[f"step_time_ratio_{shape}"] = round(ratio, 3)
        figures[f"step_time_ratio_{shape}_absolute"] = round(ratio_abs, 3)
        figures[f"step_ms_hf_{shape}"] = round(med["hf_bert"] * 1e3, 1)
    summary(figures)


if __name__ == "__main__":
    main()
