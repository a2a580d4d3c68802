"""Inference latency on this machine: how well a latency model fitted on a sample predicts the rest.

For each family (the study's small space, relative positions; a MiniLM-like family, absolute
positions) and each batch size, it times a FLOPs-spanning calibration sample together with
extra cards drawn at random from the rest (one round-robin run, so all see the same load),
fits :class:`LatencyModel` on the sample, and prints the leave-one-out error on the sample
and predicted / measured on the extra cards (the named baseline: measured latency of cards
the model never saw). For the MiniLM family it also times FlexiBERT against HF
``BertForSequenceClassification`` of the same homogeneous shape (SDPA), round robin in this
process, and it times ``predict`` over the 332,352-card full small space. The closing line's
``latency_heldout_median_rel_error`` is the median over (family, batch) of the leave-one-out
medians, ``latency_heldout_max_rel_error`` the worst leave-one-out error of any of them.

Run: ``python bench/latency.py [--threads 2] [--sample 16] [--extra 8] [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from _common import SMALL_SPACE, summary  # noqa: E402
from transformers import BertConfig, BertForSequenceClassification  # noqa: E402

from flexibert.model.cost import ArchDims, flops  # noqa: E402
from flexibert.model.latency import (  # noqa: E402
    FEATURES,
    LatencyModel,
    LatencySetup,
    measure_latencies,
    sample_cards,
    time_forward,
    timing_model,
)
from flexibert.space.design_space import DesignSpace, ModelCard  # noqa: E402

MINILM = DesignSpace(
    layers=(1, 2, 3, 4, 5, 6), heads=(12,), hidden=(384,), feed_forward=(768, 1536), similarity=("sdp",), name="minilm"
)
FAMILIES = {
    "small": (DesignSpace.from_yaml(SMALL_SPACE), ArchDims()),
    "minilm": (MINILM, ArchDims(vocab_size=30522, position_embedding_type="absolute")),
}


def run_family(name: str, batch: int, args: argparse.Namespace) -> dict:
    space, dims = FAMILIES[name]
    cards = list(space)
    setup = LatencySetup(batch=batch, threads=args.threads, dims=dims, warmup=args.warmup, repeats=args.repeats)
    sample = sample_cards(cards, min(args.sample, len(cards)), setup, args.seed)
    taken = set(sample)
    rest = [c for c in cards if c not in taken]
    rng = np.random.default_rng(args.seed)
    extra = [rest[i] for i in sorted(rng.choice(len(rest), min(args.extra, len(rest)), replace=False))]
    t0 = time.perf_counter()
    ms = measure_latencies(sample + extra, setup, args.seed)
    took = time.perf_counter() - t0
    model = LatencyModel(setup).fit(sample, ms[: len(sample)])
    measured = np.array(ms[len(sample) :])
    predicted = model.predict(extra)
    ratio = predicted / measured
    rel = np.abs(ratio - 1)
    err = model.held_out_error_
    print(f"\n== {name} ({len(cards)} cards), batch {batch}, {args.threads} threads: "
          f"{len(sample)} sampled + {len(extra)} extra cards timed in {took:.0f} s")
    print(f"   coef {', '.join(f'{k} {c:.3g}' for k, c in zip(FEATURES, model.coef_))} (ms per unit)")
    print(f"   leave-one-out on the sample: median rel error {err.median:.3f}, max {err.max:.3f}")
    print(f"   extra cards, predicted / measured: median {np.median(ratio):.3f}, "
          f"median |rel error| {np.median(rel):.3f}, max {rel.max():.3f}")
    for card, m in sorted(zip(sample + extra, ms), key=lambda p: flops(p[0], 128, dims))[:: max(1, len(ms) // 4)]:
        print(f"   {str(card):70s} {flops(card, 128, dims) / 1e9:6.2f} GFLOP/seq  measured {m:8.1f} ms")
    return {
        f"{name}_b{batch}_loo_median_rel_error": round(err.median, 4),
        f"{name}_b{batch}_loo_max_rel_error": round(err.max, 4),
        f"{name}_b{batch}_extra_median_rel_error": round(float(np.median(rel)), 4),
        f"{name}_b{batch}_extra_max_rel_error": round(float(rel.max()), 4),
        f"{name}_b{batch}_min_ms": round(min(ms), 2),
        f"{name}_b{batch}_max_ms": round(max(ms), 2),
        "_model": model,
    }


def hf_ratio(batch: int, layers: int, args: argparse.Namespace) -> float:
    """FlexiBERT / HF BERT latency of the homogeneous MiniLM shape (absolute positions, SDPA)."""
    dims = FAMILIES["minilm"][1]
    setup = LatencySetup(batch=batch, threads=args.threads, dims=dims, warmup=args.warmup, repeats=args.repeats)
    torch.manual_seed(args.seed)
    ours = timing_model(ModelCard.homogeneous(layers, 12, 384, 1536), dims)
    cfg = BertConfig(
        vocab_size=dims.vocab_size, hidden_size=384, num_hidden_layers=layers, num_attention_heads=12,
        intermediate_size=1536, num_labels=2, attn_implementation="sdpa",
    )
    theirs = BertForSequenceClassification(cfg).eval()
    a, b = time_forward([ours, theirs], setup, args.seed)
    print(f"   MiniLM L{layers} batch {batch}: FlexiBERT {a:.1f} ms, HF BERT {b:.1f} ms, ratio {a / b:.3f}")
    return a / b


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sample", type=int, default=16, help="calibration cards per family and batch")
    p.add_argument("--extra", type=int, default=8, help="cards outside the sample timed to check predictions")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    print(f"load average at start {os.getloadavg()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    figures: dict = {}
    models = {}
    for name in FAMILIES:
        for batch in args.batches:
            out = run_family(name, batch, args)
            models[(name, batch)] = out.pop("_model")
            figures |= out
    print("\n== FlexiBERT vs HF BertForSequenceClassification, same homogeneous shape")
    for batch in args.batches:
        figures[f"minilm_b{batch}_l6_ratio_vs_hf"] = round(hf_ratio(batch, 6, args), 3)
    full = list(DesignSpace.from_yaml(SMALL_SPACE, rule="full"))
    t0 = time.perf_counter()
    predicted = models[("small", args.batches[-1])].predict(full)
    figures["predict_full_space_s"] = round(time.perf_counter() - t0, 2)
    print(f"\npredict over the full small space ({len(full)} cards): {figures['predict_full_space_s']} s, "
          f"predicted ms {predicted.min():.1f} .. {predicted.max():.1f}")
    loo_median = [v for k, v in figures.items() if k.endswith("_loo_median_rel_error")]
    loo_max = [v for k, v in figures.items() if k.endswith("_loo_max_rel_error")]
    figures["latency_heldout_median_rel_error"] = round(statistics.median(loo_median), 4)
    figures["latency_heldout_max_rel_error"] = max(loo_max)
    figures["threads"] = args.threads
    figures["load_average_end"] = round(os.getloadavg()[0], 2)
    print(f"load average at end {os.getloadavg()}")
    summary(figures)


if __name__ == "__main__":
    main()
