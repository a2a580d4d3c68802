"""Fine-tune the study's seed cards on the real, full SST-2 with the ``quick`` profile, from scratch
and from our own MLM seeds, and compare training throughput with HF ``BertForSequenceClassification``.

    python bench/train.py                                   # 4 cards x {scratch, mlm}: long (an hour or more)
    python bench/train.py --cards bert-tiny --inits scratch,mlm
    python bench/train.py --cards bert-tiny --inits scratch --max-train-samples 4000 --trainer-check

Per card and init it reports dev accuracy, wall time, tokens/s (real, non-padding tokens) and the ratio
of tokens/s against HF BERT of the same shape (absolute positions; ours uses relative keys) trained by
the same loop on the same batches, measured back to back. ``--trainer-check`` times
``transformers.Trainer`` against the plain loop. Figures depend on what else runs on the machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "src")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# OpenMP threads that spin while waiting collapse throughput (10-20x) when other processes share the
# cores; passive waiting keeps 2 threads at least as fast as 1. Read by libgomp when torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from _common import GLUE_DIR, VOCAB, summary  # noqa: E402


def hf_twin(card, vocab_size: int, num_labels: int):
    """HF BERT of the card's (homogeneous) shape."""
    from transformers import BertConfig, BertForSequenceClassification

    if len(set(card.h)) != 1 or len(set(card.a)) != 1 or len(set(card.f)) != 1:
        raise SystemExit(f"{card} is heterogeneous: HF BERT has no twin")
    config = BertConfig(vocab_size=vocab_size, hidden_size=card.h[0], num_hidden_layers=card.l,
                        num_attention_heads=card.a[0], intermediate_size=card.f[0], num_labels=num_labels)
    return BertForSequenceClassification(config)


def throughput_ratio(card, data, tok, steps: int, lr: float) -> tuple[float, float, float]:
    """(ours, hf, ours / hf) tokens/s over ``steps`` steps, best of two alternating rounds."""
    import torch

    from flexibert.train.loop import FitConfig, fit
    from flexibert.train.trial import build_classifier

    optim = FitConfig(batch_size=32, lr=lr, epochs=1, max_steps=steps)
    best = {"ours": 0.0, "hf": 0.0}
    for _ in range(2):
        for name in best:
            torch.manual_seed(0)
            model = build_classifier(card, tok, 2, 0) if name == "ours" else hf_twin(card, len(tok), 2)
            stats = fit(model, data, optim, seed=0, pad_id=tok.pad_token_id)
            best[name] = max(best[name], stats.tokens_per_s)
    return best["ours"], best["hf"], best["ours"] / best["hf"]


def trainer_check(data, tok, steps: int, workdir: Path) -> dict:
    """Steps/s of ``transformers.Trainer`` and of our loop, same model, batch, optimiser and length grouping."""
    import torch
    from transformers import DataCollatorWithPadding, Trainer, TrainingArguments

    from flexibert.space.seeds import SEED_CARDS
    from flexibert.train.loop import FitConfig, fit
    from flexibert.train.trial import build_classifier

    card = SEED_CARDS["bert-tiny"]
    rows = []
    for i in range(len(data)):
        lo, hi = data.offsets[i], data.offsets[i + 1]
        rows.append({"input_ids": data.ids[lo:hi].tolist(), "token_type_ids": data.type_ids[lo:hi].tolist(),
                     "labels": int(data.labels[i])})
    args = TrainingArguments(
        output_dir=str(workdir / "trainer"), per_device_train_batch_size=32, max_steps=steps, learning_rate=1e-3,
        weight_decay=0.01, lr_scheduler_type="linear", optim="adamw_torch_fused", logging_steps=50,
        save_strategy="no", report_to="none", use_cpu=True, disable_tqdm=True, dataloader_num_workers=0,
        train_sampling_strategy="group_by_length", seed=42,
    )
    out = {}
    for round_ in range(2):
        model = build_classifier(card, tok, 2, 42)
        trainer = Trainer(model=model, args=args, train_dataset=rows, data_collator=DataCollatorWithPadding(tok),
                          processing_class=tok)
        t = time.perf_counter()
        trainer.train()
        out["trainer_steps_per_s"] = max(out.get("trainer_steps_per_s", 0.0), steps / (time.perf_counter() - t))
        torch.manual_seed(42)
        model = build_classifier(card, tok, 2, 42)
        stats = fit(model, data, FitConfig(batch_size=32, lr=1e-3, epochs=1, max_steps=steps), seed=42,
                    pad_id=tok.pad_token_id)
        out["loop_steps_per_s"] = max(out.get("loop_steps_per_s", 0.0), stats.steps / stats.train_s)
    out["loop_speedup_vs_trainer"] = out["loop_steps_per_s"] / out["trainer_steps_per_s"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cards", default="bert-tiny,bert-mini,bert-l2-h256,bert-l4-h128")
    ap.add_argument("--inits", default="scratch,mlm", help="scratch, mlm or both")
    ap.add_argument("--max-train-samples", type=int, default=None, help="default: all 67,349")
    ap.add_argument("--epochs", type=float, default=None, help="fine-tuning epochs (quick profile: 1)")
    ap.add_argument("--lr", type=float, default=None, help="fine-tuning lr (quick profile: 1e-3)")
    ap.add_argument("--mlm-epochs", type=float, default=1.0)
    ap.add_argument("--mlm-max-steps", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--throughput-steps", type=int, default=100, help="steps per side of the HF comparison (0: skip)")
    ap.add_argument("--trainer-check", action="store_true", help="also time transformers.Trainer against the loop")
    ap.add_argument("--tokenizer", default=str(VOCAB))
    ap.add_argument("--out", default=None, help="work directory (default: a new temp directory)")
    args = ap.parse_args()

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    from flexibert.space.seeds import seed_card
    from flexibert.train.data import train_texts
    from flexibert.train.encoding_cache import encoded_split
    from flexibert.train.loop import set_threads
    from flexibert.train.pretrain import MlmConfig, pretrain
    from flexibert.train.profiles import get_profile
    from flexibert.train.tasks import get_task
    from flexibert.train.tokenization import load_tokenizer
    from flexibert.train.trial import TrialSpec, train_trial

    out = Path(args.out or tempfile.mkdtemp(prefix="flexibert-bench-train-"))
    cache = out / "cache"
    set_threads(args.threads)
    task = get_task("sst2")
    tok = load_tokenizer(args.tokenizer)
    profile = get_profile("quick", max_train_samples=args.max_train_samples, epochs=args.epochs, lr=args.lr)
    inits = [x.strip() for x in args.inits.split(",") if x.strip()]
    print(f"work dir {out}; {args.threads} threads; load average at start {os.getloadavg()[0]:.1f}", flush=True)

    sample = encoded_split(GLUE_DIR, task, "train", tok, profile.max_seq_len, cache, 4000)  # for the timings
    extra = {}
    if args.trainer_check:
        extra = trainer_check(sample, tok, 150, out)
        print(f"trainer check: {extra}", flush=True)

    corpus = train_texts(GLUE_DIR, task) if "mlm" in inits else []
    rows = []
    for name in [c.strip() for c in args.cards.split(",") if c.strip()]:
        card = seed_card(name)
        ratio = None
        if args.throughput_steps:
            ours, hf, ratio = throughput_ratio(card, sample, tok, args.throughput_steps, profile.lr)
            print(f"{name}: tokens/s ours {ours:,.0f}, HF {hf:,.0f}, ratio {ratio:.2f}", flush=True)
        for init in inits:
            source, mlm_s = None, None
            if init == "mlm":
                cfg = MlmConfig(epochs=args.mlm_epochs, max_steps=args.mlm_max_steps)
                (seed,) = pretrain([card], corpus, args.tokenizer, out / "seeds", cfg, num_threads=args.threads)
                source, mlm_s = seed.checkpoint, seed.wall_s
                print(f"{name}: MLM {seed.steps} steps in {seed.wall_s:.0f}s, loss {seed.curve[0]['loss']:.2f} -> "
                      f"{seed.curve[-1]['loss']:.2f}", flush=True)
            elif init != "scratch":
                raise SystemExit(f"unknown init {init!r}; expected scratch or mlm")
            spec = TrialSpec(card, task, profile, init=source, data=GLUE_DIR,
                             tokenizer=None if source else args.tokenizer, num_threads=args.threads, cache_dir=cache)
            r = train_trial(spec, out / "trials" / f"{name}-{init}")
            row = {"card": name, "init": init, "dev_accuracy": round(r.metrics["accuracy"], 4),
                   "wall_s": round(r.wall_s, 1), "tokens_per_s": round(r.tokens_per_s),
                   "tokens_per_s_ratio_vs_hf": None if ratio is None else round(ratio, 3),
                   "steps": r.steps, "train_samples": r.num_train,
                   "mlm_wall_s": None if mlm_s is None else round(mlm_s, 1)}
            rows.append(row)
            print(f"{name} {init}: dev {row['dev_accuracy']:.4f}, {row['wall_s']}s, "
                  f"{row['tokens_per_s']:,} tok/s", flush=True)

    print("\n| card | init | dev acc | wall s | tokens/s | ratio vs HF |\n|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['card']} | {r['init']} | {r['dev_accuracy']:.4f} | {r['wall_s']} | {r['tokens_per_s']:,} | "
              f"{r['tokens_per_s_ratio_vs_hf']} |")
    summary({
        "best_dev_accuracy": max((r["dev_accuracy"] for r in rows), default=None),
        "cards": rows,
        "threads": args.threads,
        "load_average_end": round(os.getloadavg()[0], 1),
        **{k: round(v, 3) for k, v in extra.items()},
    })


if __name__ == "__main__":
    main()
