"""Shared test fixtures: the real data in ``../shared/data`` (never downloaded)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("FLEXIBERT_SHARED_DATA", ROOT.parent / "shared" / "data"))
STUDY_JSON = SHARED / "flexibert-2021" / "dataset_small_sst2.json"
GLUE_DIR = SHARED / "glue"
VOCAB = SHARED / "vocab" / "bert-base-uncased-vocab.txt"
SMALL_SPACE = ROOT / "configs" / "spaces" / "flexibert-small.yaml"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def study() -> dict:
    """The original study's 2037-model library with its measured SST-2 accuracies."""
    return json.loads(STUDY_JSON.read_text())


@pytest.fixture(scope="session")
def small_space():
    from flexibert.space.design_space import DesignSpace

    return DesignSpace.from_yaml(SMALL_SPACE)
