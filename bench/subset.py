"""How a capped training split is drawn: whole texts first (``subset: whole-first``) against at random, on SST-2.

    python bench/subset.py                          # 2 models x 2 draws x 3 training seeds: about 25 min on 2 cores
    python bench/subset.py --seeds 42 --train 5000

The pretrained quickstart confirms its winner and the seed on a fixed 20,000 of SST-2's 56,121
training examples (the rest of the split once the leak-free holdout is carved out). SST-2's split
holds 6,882 whole sentences among 60,467 of their sub-phrases, and dev asks about whole sentences;
a random draw takes about 2,100 of the sentences, a whole-first draw all 5,882 left. Each arm
fine-tunes all-MiniLM-L6-v2 itself (the reference) and the quickstart's winner (3 layers, FFN 768)
from the imported seed under the ``pretrained`` profile, 44 tokens, one thread each, two at a time.
Scores are on the leak-free validation holdout (1,000 whole sentences); dev is only reported. The
named baseline is the random draw (the earlier behaviour), run in the same process; gains and the
retention's interval are paired by training seed (Student t, 95%).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "src")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from _common import mean_sd, minilm_sst2_options, summary  # noqa: E402

from flexibert.search.results import mean_ci95, paired_ratio_ci95  # noqa: E402
from flexibert.space.design_space import ModelCard  # noqa: E402

MODELS = {"seed": ModelCard.homogeneous(l=6, a=12, h=384, f=1536), "child": ModelCard.homogeneous(l=3, a=12, h=384,
                                                                                                 f=768)}
DRAWS = ("random", "whole-first")
BASELINE = "random"


def _train(args: tuple) -> dict:
    """One arm: ``model`` fine-tuned with ``draw`` and training ``seed``; validation, dev and wall time."""
    from flexibert.train.holdout import Holdout
    from flexibert.train.profiles import get_profile
    from flexibert.train.trial import TrialSpec, train_trial

    model, draw, seed, n, max_len, init, data, tmp = args
    prof = get_profile("pretrained", max_train_samples=n, max_seq_len=max_len)
    spec = TrialSpec(MODELS[model], "sst2", prof, init=init, data=data, seed=seed, num_threads=1,
                     cache_dir=Path(tmp) / "cache", holdout=Holdout(1000), subset=draw)
    r = train_trial(spec, Path(tmp) / f"{model}-{draw}-{seed}")
    return {"model": model, "draw": draw, "seed": seed, "validation": r.score, "dev": r.metrics["accuracy"],
            "train_s": round(r.train_s, 1), "num_train": r.num_train}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="42,1,2", help="training seeds, comma-separated")
    minilm_sst2_options(ap, "the cap: the quickstart confirmation's")
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    from flexibert.model.import_bert import import_bert

    with tempfile.TemporaryDirectory() as tmp:
        init = Path(tmp) / "minilm"
        import_bert(args.encoder, init)
        jobs = [(m, d, s, args.train, args.max_seq_len, str(init), args.data_dir, tmp)
                for s in seeds for m in MODELS for d in DRAWS]
        with ProcessPoolExecutor(args.workers) as pool:
            rows = []
            for r in pool.map(_train, jobs):
                print(r, flush=True)
                rows.append(r)
    runs = {(m, d): sorted((r for r in rows if (r["model"], r["draw"]) == (m, d)), key=lambda r: r["seed"])
            for m in MODELS for d in DRAWS}
    figures: dict[str, object] = {"train": args.train, "seeds": seeds, "baseline": BASELINE}
    print(f"\n{'model':<7}{'draw':<13}{'validation':>18}{'dev':>18}{'train s':>9}")
    for (m, d), rs in runs.items():
        for split in ("validation", "dev"):
            mean, sd = mean_sd(r[split] for r in rs)
            figures[f"{split}_{m}_{d}"], figures[f"{split}_{m}_{d}_sd"] = round(mean, 4), round(sd, 4)
        figures[f"train_s_{m}_{d}"] = round(statistics.fmean(r["train_s"] for r in rs), 1)
        print(f"{m:<7}{d:<13}" + "".join(f"{figures[f'{s}_{m}_{d}']:>10.4f} ± {figures[f'{s}_{m}_{d}_sd']:.4f}"
                                         for s in ("validation", "dev")) + f"{figures[f'train_s_{m}_{d}']:>9}")
    for m in MODELS:
        for split in ("validation", "dev"):
            gains = [w[split] - b[split] for w, b in zip(runs[(m, "whole-first")], runs[(m, BASELINE)])]
            figures[f"{split}_gain_{m}"], figures[f"{split}_gain_{m}_ci95"] = (round(statistics.fmean(gains), 4),
                                                                             round(mean_ci95(gains) or 0.0, 4))
        figures[f"time_ratio_{m}"] = round(figures[f"train_s_{m}_whole-first"] / figures[f"train_s_{m}_{BASELINE}"], 3)
        print(f"{m}: whole-first over {BASELINE}: dev {figures[f'dev_gain_{m}']:+.4f} ± "
              f"{figures[f'dev_gain_{m}_ci95']:.4f}, validation {figures[f'validation_gain_{m}']:+.4f} ± "
              f"{figures[f'validation_gain_{m}_ci95']:.4f} (95% CI, paired); training time "
              f"{figures[f'time_ratio_{m}']}x")
    for d in DRAWS:
        child, seed = runs[("child", d)], runs[("seed", d)]
        kept = statistics.fmean(r["dev"] for r in child) / statistics.fmean(r["dev"] for r in seed)
        figures[f"retention_{d}"] = round(kept, 4)
        figures[f"retention_{d}_ci95"] = round(paired_ratio_ci95(child, seed) or 0.0, 4)
        print(f"retention of dev, {d}: {kept:.4f} ± {figures[f'retention_{d}_ci95']:.4f}")
    summary(figures)


if __name__ == "__main__":
    main()
