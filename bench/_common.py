"""Helpers shared by the bench scripts: where the real data lives, and the JSON summary line."""

from __future__ import annotations

import json
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FLEXIBERT_SHARED_DATA", ROOT.parent / "shared" / "data"))
STUDY_JSON = SHARED / "flexibert-2021" / "dataset_small_sst2.json"
GLUE_DIR = SHARED / "glue"
VOCAB = SHARED / "vocab" / "bert-base-uncased-vocab.txt"
SMALL_SPACE = ROOT / "configs" / "spaces" / "flexibert-small.yaml"


def summary(figures: dict) -> None:
    """Print the one closing JSON line each bench script ends with."""
    print(json.dumps(figures, sort_keys=True), flush=True)
