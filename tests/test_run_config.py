"""A run config is checked whole when it is read: every malformed value fails before any stage.

Each bad config runs ``flexibert run`` in a fresh interpreter, as a user meets it: exit code 2,
exactly one line on stderr naming the file and the key, torch never loaded and nothing written
(no run directory). Only what loads and what is written is asserted, never a time: machines are
noisy (the command takes well under a second on a 2-core machine).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flexibert._common import FlexiBertError

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers")
#: The CLI, telling through a file (stderr is the thing under test) which heavy modules it loaded by its exit.
CLI = ("import atexit, json, sys\n"
       "out = sys.argv.pop(1)\n"
       "atexit.register(lambda: open(out, 'w').write(json.dumps([m for m in {heavy!r} if m in sys.modules])))\n"
       "from flexibert.cli import main\n"
       "main(sys.argv[1:])\n").format(heavy=HEAVY)

#: One bad value per row, across every section: (the config's keys over a valid one, the key its error names).
BAD = {
    "budget.max_flops negative": ({"budget": {"max_flops": -5}}, "budget.max_flops must be a positive integer, got -5"),
    "budget.max_params a string": ({"budget": {"max_params": "many"}}, "budget.max_params"),
    "budget.max_latency_ratio zero": ({"budget": {"max_latency_ratio": 0}}, "budget.max_latency_ratio must be a "
                                      "positive number, got 0"),
    "budget.max_latency_ratio without an encoder": ({"budget": {"max_latency_ratio": 0.5}},
                                                    "budget.max_latency_ratio is a fraction of an imported encoder's"),
    "search.workers zero": ({"search": {"workers": 0}}, "search.workers must be an integer >= 1, got 0"),
    "search.budget zero": ({"search": {"budget": 0}}, "search.budget"),
    "search.acquisition unknown": ({"search": {"acquisition": "greedy"}}, "search.acquisition must be one of"),
    "search.backend unknown": ({"search": {"backend": "slurm"}}, "search.backend must be one of"),
    "search.time_budget_s negative": ({"search": {"time_budget_s": -1}}, "search.time_budget_s"),
    "search.cpus_per_trial zero": ({"search": {"cpus_per_trial": 0}}, "search.cpus_per_trial"),
    "search.gpus_per_trial negative": ({"search": {"gpus_per_trial": -1}}, "search.gpus_per_trial"),
    "latency.sample too few to fit": ({"latency": {"sample": 2}}, "latency.sample must be an integer >= 7"),
    "space.dims a string": ({"space": {"dims": "eight"}}, "space.dims"),
    "space.sweep negative": ({"space": {"sweep": [2, -4]}}, "space.sweep"),
    "space.file missing": ({"space": {"file": "nowhere.yaml"}}, "space.file nowhere.yaml is not a file"),
    "training.profile unknown": ({"training": {"profile": "fast"}}, "training.profile must be one of"),
    "training.max_train_samples zero": ({"training": {"max_train_samples": 0}}, "training.max_train_samples"),
    "training.holdout zero": ({"training": {"holdout": 0}}, "training.holdout must be"),
    "training.layer_map unknown": ({"training": {"layer_map": "top"}}, "training.layer_map must be one of"),
    "training.ffn_select unknown": ({"training": {"ffn_select": "random"}}, "training.ffn_select must be one of"),
    "training.subset unknown": ({"training": {"subset": "longest"}}, "training.subset must be one of"),
    "confirm.epochs zero": ({"confirm": {"epochs": 0}}, "confirm.epochs"),
    "confirm.lr negative": ({"confirm": {"lr": -1e-4}}, "confirm.lr"),
    "confirm.max_train_samples zero": ({"confirm": {"max_train_samples": 0}}, "confirm.max_train_samples"),
    "confirm.seeds not a list": ({"confirm": {"seeds": 42}}, "confirm.seeds"),
    "confirm.distill.alpha above 1": ({"confirm": {"distill": {"alpha": 1.5}}}, "confirm.distill.alpha"),
    "confirm.distill.temperature zero": ({"confirm": {"distill": {"temperature": 0}}}, "confirm.distill.temperature"),
    "seeds.epochs zero": ({"seeds": {"epochs": 0}}, "seeds.epochs"),
    "seeds.max_seq_len zero": ({"seeds": {"max_seq_len": 0}}, "seeds.max_seq_len"),
    "seed a string": ({"seed": "forty-two"}, "seed must be an integer"),
    "task unknown": ({"task": "sst3"}, "task must be a GLUE task"),
    "positions unknown": ({"positions": "rope"}, "positions must be one of [null, 'absolute', 'relative_key']"),
}


def _write(tmp_path: Path, keys: dict) -> Path:
    """A valid small config with ``keys`` laid over it, section by section."""
    (tmp_path / "space.yaml").write_text((ROOT / "configs" / "spaces" / "flexibert-small.yaml").read_text())
    cfg: dict = {"name": "bad", "task": "sst2", "space": {"file": "space.yaml"}}
    for key, value in keys.items():
        both = isinstance(value, dict) and isinstance(cfg.get(key), dict)
        cfg[key] = {**cfg[key], **value} if both else value
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.mark.parametrize("case", BAD)
def test_a_bad_value_fails_as_the_config_is_read(tmp_path, case):
    keys, names = BAD[case]
    _write(tmp_path, keys)
    before, loaded = _files(tmp_path), tmp_path.parent / f"{tmp_path.name}.loaded.json"
    done = subprocess.run([sys.executable, "-c", CLI, str(loaded), "run", "bad.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(done.stderr.splitlines()) == 1, repr(done.stderr)  # one line: no blank line before it either
    assert done.stderr.startswith(f"error: run config bad.yaml: {names}"), done.stderr
    assert json.loads(loaded.read_text()) == [], "a malformed config loaded torch"
    assert _files(tmp_path) == before, "a malformed config wrote something"


def test_a_good_config_reads_and_keeps_its_values(tmp_path):
    """The checks refuse only what is wrong: null where allowed, integers for numbers, lists kept as tuples."""
    from flexibert.run import RunConfig

    path = _write(tmp_path, {"search": {"time_budget_s": 60, "gpus_per_trial": 0.5}, "latency": {"sample": 7},
                             "training": {"holdout": None, "pooling": "mean"}, "confirm": {"lr": 1, "seeds": [1, 2],
                             "distill": {"alpha": 0, "temperature": 1}}, "space": {"sweep": []}})
    config = RunConfig.from_yaml(path)
    assert config.confirm.seeds == (1, 2) and config.space.sweep == () and config.confirm.distill.alpha == 0
    assert config.space.file == str(tmp_path / "space.yaml")


def test_numbers_in_exponent_form_are_numbers(tmp_path):
    """``lr: 1e-4``, as users write it, in a config file and in ``--set``: YAML 1.1 alone reads it as a string."""
    from flexibert.cli.train import recipe
    from flexibert.run import RunConfig

    path = _write(tmp_path, {})
    path.write_text(path.read_text() + "confirm: {lr: 1e-4}\nbudget: {max_latency_ms: 2E+1}\n")
    config = RunConfig.from_yaml(path)
    assert config.confirm.lr == 1e-4 and config.budget.max_latency_ms == 20.0
    assert recipe(["lr=1e-4", "epochs=2", "name=e5"]) == {"lr": 1e-4, "epochs": 2, "name": "e5"}


@pytest.mark.parametrize("keys, message", [
    ({"search": {"address": "10.0.0.1:6379"}}, "search.address is for the ray backend only"),
    ({"confirm": {"distill": {"hidden": "yes"}}}, "confirm.distill.hidden must be true or false"),
    ({"confirm": {"reference": "no"}}, "confirm.reference must be true or false"),
    ({"seeds": {"checkpoints": ["bert"]}}, "seeds.checkpoints must map seed names"),
    ({"name": 7}, "name must be a non-empty string"),
    ({"seed": True}, "seed must be an integer"),
    ({"tokenizer": ""}, "tokenizer must be a non-empty string or null"),
])
def test_more_bad_values_name_their_key(tmp_path, keys, message):
    from flexibert.run import RunConfig

    path = _write(tmp_path, keys)
    with pytest.raises(FlexiBertError) as e:
        RunConfig.from_yaml(path)
    assert str(e.value).startswith(f"run config {path}: {message}"), str(e.value)
