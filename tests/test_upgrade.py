"""A run stored by the previous version (schema 1) resumes as it was measured; a real difference is refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from flexibert._common import FlexiBertError
from flexibert.run.config import RunConfig
from flexibert.run.job import STAGES
from flexibert.run.stages import Quiet, open_run, run_stages
from flexibert.search.budget import Budget
from flexibert.search.config import SCHEMA, SearchConfig
from tests.conftest import GLUE_DIR, VOCAB

FIXTURES = Path(__file__).parent / "fixtures" / "schema1"
SPACE = {"name": "tiny", "layers": [2], "heads": [2, 4], "hidden": [128, 256], "feed_forward": [512, 1024],
         "similarity": ["sdp", "wma"]}


def _tiny(tmp_path: Path, **training) -> Path:
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(SPACE))
    cfg = {"name": "tiny", "task": "sst2", "data": str(GLUE_DIR), "tokenizer": str(VOCAB), "seed": 7,
           "space": {"file": "space.yaml", "dims": 4, "k": 5, "sweep": [2, 4]},
           "seeds": {"route": "mlm", "epochs": 1, "max_samples": 300, "max_seq_len": 32},
           "training": {"profile": "quick", "max_train_samples": 300, "holdout": 200, **training},
           "search": {"acquisition": "ucb", "workers": 2, "backend": "local", "budget": 5},
           "latency": {"sample": 7, "threads": 1}, "confirm": {"k": 2, "max_train_samples": 600}}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _stored(name: str, tmp_path: Path) -> dict:
    text = (FIXTURES / name).read_text()
    for key, value in {"SPACE": (tmp_path / "space.yaml").resolve(), "DATA": GLUE_DIR, "VOCAB": VOCAB}.items():
        text = text.replace("{" + key + "}", str(value))
    return json.loads(text)


def test_a_schema_1_run_resumes_with_the_holdout_it_was_measured_with(tmp_path):
    config = RunConfig.from_yaml(_tiny(tmp_path))
    assert config.training.holdout_split == "grouped"  # what a new run gets
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    old = _stored("config.json", tmp_path)
    (run_dir / "config.json").write_text(json.dumps(old))
    run = open_run(config, run_dir, Quiet())
    assert run.config.training.holdout_split == "random"  # schema 1 drew it at random
    assert json.loads((run_dir / "config.json").read_text()) == old  # left as written: every resume reads it alike
    # The early stages run on it, and the search it derives draws the old holdout.
    run_stages(run, [s for s in STAGES if s[0] in ("import", "space", "tokenizer", "data")])
    assert run.done["data"]["split"]["method"] == "random" and run.done["data"]["split"]["dropped"] == 0
    run.done["seeds"] = {}  # not trained here: the search's config needs only their paths
    assert run.search_config().oracle.holdout_split == "random"  # what the search stage stores and trains with
    again = open_run(RunConfig.from_yaml(_tiny(tmp_path)), run_dir, Quiet())
    assert again.config.training.holdout_split == "random" and again.done["data"] == run.done["data"]
    assert (run_dir / "config.json").read_text() == json.dumps(old)


def test_a_real_difference_names_its_key(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps(_stored("config.json", tmp_path)))
    changed = RunConfig.from_yaml(_tiny(tmp_path, max_train_samples=400))
    with pytest.raises(FlexiBertError, match=r"training\.max_train_samples \(300 there, 400 here\)"):
        open_run(changed, run_dir, Quiet())


def test_a_newer_schema_is_refused(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "config.json").write_text(json.dumps({**_stored("config.json", tmp_path), "schema": SCHEMA + 1}))
    with pytest.raises(FlexiBertError, match="schema"):
        open_run(RunConfig.from_yaml(_tiny(tmp_path)), run_dir, Quiet())


def test_a_schema_1_search_config_reads_back_with_a_random_holdout(tmp_path):
    from flexibert.search.oracles import TrainOracle
    from flexibert.train.holdout import Holdout

    old = SearchConfig.from_dict(_stored("search-config.json", tmp_path))
    assert TrainOracle("sst2", old.oracle).holdout == Holdout(200, "random")
    new = RunConfig.from_yaml(_tiny(tmp_path)).search_config("/LIB", str(VOCAB), 30522, {}, 200, 44, None, Budget())
    stored = json.loads(json.dumps(new.to_dict()))
    assert stored["schema"] == 2 and SearchConfig.from_dict(stored) == new
    assert TrainOracle("sst2", new.oracle).holdout == Holdout(200, "grouped")
