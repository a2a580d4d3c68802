"""Export a real fine-tuned SST-2 model and use it as a user would: plain ``transformers`` in a
process that cannot import ``flexibert``, and ``flexibert predict``; plus the bad inputs.

One short fine-tune (BERT-Tiny, 1000 real SST-2 sentences) serves every test of this file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from flexibert._common import FlexiBertError
from flexibert.cli import main
from flexibert.model.checkpoint import load_checkpoint
from flexibert.model.export import export_checkpoint
from flexibert.search.store import RunStore
from flexibert.space.seeds import SEED_CARDS
from flexibert.train.data import load_split
from flexibert.train.profiles import get_profile
from flexibert.train.tasks import get_task
from flexibert.train.trial import TrialSpec, train_trial

from .conftest import GLUE_DIR, ROOT, VOCAB

PROBE = 24  # dev sentences whose logits are compared one by one

# Run with PYTHONPATH="" and `flexibert` blocked: only the exported directory and transformers.
PLAIN_TRANSFORMERS = """
import json, sys, torch
sys.modules["flexibert"] = None
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model_dir, dev_file, out_file = sys.argv[1:]
tok = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
model = AutoModelForSequenceClassification.from_pretrained(model_dir, trust_remote_code=True).eval()
dev = json.load(open(dev_file))
def logits(texts):
    with torch.no_grad():
        return model(**tok(texts, padding=True, truncation=True, return_tensors="pt")).logits
preds = [p for i in range(0, len(dev["sentences"]), 128)
         for p in logits(dev["sentences"][i:i + 128]).argmax(-1).tolist()]
json.dump({"module": type(model).__module__, "vocab": len(tok),
           "probe": logits(dev["sentences"][:%d]).tolist(), "preds": preds}, open(out_file, "w"))
""" % PROBE


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A real fine-tuned classifier that is clearly better than the majority class (0.509)."""
    tmp = tmp_path_factory.mktemp("trial")
    prof = get_profile("quick", max_train_samples=1000, epochs=3, lr=2e-3)
    spec = TrialSpec(SEED_CARDS["bert-tiny"], "sst2", prof, data=GLUE_DIR, tokenizer=VOCAB, num_threads=1,
                     cache_dir=tmp / "cache")
    result = train_trial(spec, tmp / "trial")
    assert result.metrics["accuracy"] > 0.58
    return result


@pytest.fixture(scope="module")
def dev():
    examples = load_split(GLUE_DIR, get_task("sst2"), "dev")
    return list(examples.texts[0]), examples.labels.tolist()


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    return export_checkpoint(trained.checkpoint, tmp_path_factory.mktemp("export") / "sst2-tiny")


@pytest.fixture(scope="module")
def outside(exported, dev, tmp_path_factory):
    """Both consumers of the export, run side by side in fresh processes: plain transformers
    (without flexibert) over SST-2 dev, and ``flexibert predict`` on a sentence and a pair."""
    tmp = tmp_path_factory.mktemp("outside")
    (tmp / "dev.json").write_text(json.dumps({"sentences": dev[0]}))
    texts = [dev[0][0], f"{dev[0][1]} [SEP] {dev[0][2]}"]
    base = {**os.environ, "HF_MODULES_CACHE": str(tmp / "modules"), "COLUMNS": "200"}
    pipes = dict(stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    plain = subprocess.Popen(
        [sys.executable, "-c", PLAIN_TRANSFORMERS, str(exported), str(tmp / "dev.json"), str(tmp / "plain.json")],
        cwd=tmp, env={**base, "PYTHONPATH": ""}, **pipes)
    cli = subprocess.Popen([sys.executable, "-m", "flexibert.cli", "predict", str(exported), *texts], cwd=ROOT,
                           env={**base, "PYTHONPATH": str(ROOT / "src")}, **pipes)
    runs = {}
    for name, proc in (("plain", plain), ("cli", cli)):
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name}: {err[-2000:]}"
        runs[name] = out
    plain_result = json.loads((tmp / "plain.json").read_text())
    predictions = [json.loads(line) for line in runs["cli"].splitlines() if line.strip()]
    return plain_result, texts, predictions


def logits_here(checkpoint, *texts) -> torch.Tensor:
    """Logits of the model before export, loaded in this process with its own tokenizer."""
    model, tok = load_checkpoint(checkpoint)
    with torch.no_grad():
        return model(**tok(*texts, padding=True, truncation=True, return_tensors="pt")).logits


def test_export_holds_weights_tokenizer_and_remote_code(trained, exported):
    files = {p.name for p in exported.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "configuration_flexibert.py", "modeling_flexibert.py"} <= files
    weights = "model.safetensors"
    assert (exported / weights).read_bytes() == (Path(trained.checkpoint) / weights).read_bytes()
    config = json.loads((exported / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSequenceClassification"] == \
        "modeling_flexibert.FlexiBertForSequenceClassification"
    assert "from .configuration_flexibert import" in (exported / "modeling_flexibert.py").read_text()
    assert not [p for p in exported.parent.iterdir() if p != exported]  # no temp directory left behind


def test_plain_transformers_reproduces_the_model_and_its_dev_accuracy(trained, dev, outside):
    plain = outside[0]
    assert plain["module"].startswith("transformers_modules"), plain["module"]
    assert plain["vocab"] == 30522  # the real vocabulary, not the 5-token fallback
    expected = logits_here(trained.checkpoint, dev[0][:PROBE])
    assert torch.allclose(torch.tensor(plain["probe"]), expected, rtol=0, atol=1e-5)
    labels = dev[1]
    accuracy = sum(p == y for p, y in zip(plain["preds"], labels)) / len(labels)
    assert len(plain["preds"]) == 872 and 0 < sum(plain["preds"]) < 872  # both classes predicted
    assert accuracy == pytest.approx(trained.metrics["accuracy"], abs=1e-12)


def test_cli_predict_prints_label_and_probabilities(trained, outside):
    _, texts, predictions = outside
    assert [p["text"] for p in predictions] == texts
    first, second = texts[1].split(" [SEP] ")
    expected = torch.cat([logits_here(trained.checkpoint, [texts[0]]),
                          logits_here(trained.checkpoint, [first], [second])])
    for row, logits in zip(predictions, expected):
        probs = row["probabilities"]
        assert len(probs) == 2 and sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
        assert row["label"] == max(probs, key=probs.get)
        assert list(probs.values()) == pytest.approx(torch.softmax(logits, -1).tolist(), abs=1e-5)


def _run_dir(tmp_path: Path, trained) -> Path:
    """A real run database holding the trained model as its one finished trial."""
    run = tmp_path / "run"
    from flexibert.search.config import SearchConfig, TrainConfig

    with RunStore(run / "search", create=True) as store:
        store.set_meta("config", SearchConfig("sst2", TrainConfig("space.yaml", data=str(GLUE_DIR))).to_dict())
        trial_id = store.add_trial(0, trained.card, "tiny")
        store.start(trial_id)
        store.finish(trial_id, trained.score, trained.metrics, trained.checkpoint)
    return run


def test_cli_export_best_and_refusal_to_overwrite(trained, tmp_path, capsys):
    run = _run_dir(tmp_path, trained)
    out = tmp_path / "best"
    with pytest.raises(SystemExit) as done:
        main(["export", str(run), "--out", str(out)])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == str(out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    assert "modeling_flexibert.py" in before
    readme = before["README.md"].decode()  # the hub model card, with the run's own dev score
    assert readme.startswith("---") and f"{trained.metrics['accuracy']:.4f}" in readme
    with pytest.raises(SystemExit) as done:
        main(["export", str(run), "--out", str(out)])
    err = capsys.readouterr().err
    assert done.value.code == 2 and "already exists" in err and len(err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_export_writes_the_model_card_as_readme(trained, tmp_path):
    from flexibert.model.cost import flops, param_count
    from flexibert.report.model_card import model_card
    from flexibert.space.design_space import ModelCard

    card = ModelCard.from_dict(trained.card)
    dev = trained.metrics["accuracy"]
    readme = model_card({"card": trained.card, "validation": trained.score, "dev": dev, "params": param_count(card),
                         "flops": flops(card), "latency_ms": None, "task": "SST-2",
                         "data": f"{trained.num_train} SST-2 training sentences."})
    out = export_checkpoint(trained.checkpoint, tmp_path / "with-card", readme=readme)
    assert (out / "README.md").read_text() == readme and f"{dev:.4f}" in readme
    assert (out / "modeling_flexibert.py").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["with-card"]  # written with the rest, no temp left


def test_export_into_a_non_empty_directory_is_refused(trained, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FlexiBertError, match="already exists"):
        export_checkpoint(trained.checkpoint, out)
    assert [p.name for p in out.iterdir()] == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_export_of_corrupt_weights_is_refused(trained, tmp_path, damage):
    bad = tmp_path / "bad"
    shutil.copytree(trained.checkpoint, bad)
    weights = bad / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncated" else b"not a safetensors file" * 100)
    with pytest.raises(FlexiBertError, match=r"corrupt safetensors file .*model\.safetensors"):
        export_checkpoint(bad, tmp_path / "out")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad"]


def test_cli_predict_on_a_directory_without_config_fails_in_one_line(tmp_path, capsys):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(SystemExit) as done:
        main(["predict", str(tmp_path), "a fine film"])
    err = capsys.readouterr().err
    assert done.value.code == 2
    assert err.strip().splitlines() == [f"error: {tmp_path} is not a model directory (config.json missing)"]
