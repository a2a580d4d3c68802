"""Fine-tuning, checkpoints, MLM pretraining and weight-transfer init, on real SST-2 subsets.

Tiny models and small subsets keep this file to about a minute on two cores. Trials use one
thread: other test processes may share the cores, and spinning OpenMP threads then stall.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flexibert._common import FlexiBertError
from flexibert.cli import main
from flexibert.model.checkpoint import load_checkpoint, load_config
from flexibert.model.overlap import overlap as card_overlap
from flexibert.space.seeds import SEED_CARDS
from flexibert.train.data import GlueDir, train_texts
from flexibert.train.loop import FitConfig
from flexibert.train.pretrain import MlmConfig, pretrain
from flexibert.train.profiles import PROFILES, get_profile
from flexibert.train.tasks import get_task
from flexibert.train.tokenization import cached_wordpiece
from flexibert.train.trial import (
    TrialResult,
    TrialSpec,
    evaluate_checkpoint,
    train_trial,
)

from .conftest import GLUE_DIR, VOCAB

TINY = SEED_CARDS["bert-tiny"]
MAJORITY = 444 / 872  # SST-2 dev: the larger class


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("cache")


def trial(workdir, cache, profile, card=TINY, init=None, tokenizer=VOCAB, seed=42):
    spec = TrialSpec(card, "sst2", profile, init=init, data=GLUE_DIR, tokenizer=tokenizer, seed=seed, num_threads=1,
                     cache_dir=cache)
    return train_trial(spec, workdir)


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, cache):
    prof = get_profile("quick", max_train_samples=2000, epochs=3, lr=1e-3, log_every=20)
    return trial(tmp_path_factory.mktemp("ft"), cache, prof)


def test_profiles_follow_the_study_and_the_cpu():
    paper = PROFILES["paper"]
    assert (paper.max_seq_len, paper.batch_size, paper.lr, paper.epochs) == (128, 64, 2e-5, 5)
    assert PROFILES["quick"].max_seq_len == 64 and PROFILES["quick"].epochs == 1
    assert get_profile("quick", max_train_samples=10).max_train_samples == 10
    with pytest.raises(FlexiBertError, match="unknown training profile"):
        get_profile("slow")
    with pytest.raises(FlexiBertError, match="unknown profile field"):
        get_profile("quick", momentum=0.9)
    optim = get_profile("quick", lr=1e-3).optimization()
    assert optim == FitConfig(batch_size=32, lr=1e-3, epochs=1, warmup_ratio=0.06, weight_decay=0.01, log_every=50)
    assert MlmConfig(max_steps=7).optimization().max_steps == 7
    assert get_profile("pretrained").optimization().min_steps == 90 and optim.min_steps == 0
    with pytest.raises(FlexiBertError, match="min_steps"):
        get_profile("quick", min_steps=-1)
    with pytest.raises(FlexiBertError, match="warmup_ratio"):
        FitConfig(batch_size=32, lr=1e-3, epochs=1, warmup_ratio=1.5)


def test_trial_spec_converts_what_a_user_writes():
    spec = TrialSpec(TINY.to_dict(), "SST-2", "quick", init=str(GLUE_DIR), data=str(GLUE_DIR), cache_dir="c")
    assert spec.card == TINY and spec.task == get_task("sst2") and spec.profile == PROFILES["quick"]
    assert spec.data == GlueDir(GLUE_DIR) and spec.init == GLUE_DIR and spec.cache_dir == Path("c")
    with pytest.raises(FlexiBertError, match="unknown training profile"):
        TrialSpec(TINY, "sst2", "slow")
    with pytest.raises(FlexiBertError, match="unknown task"):
        TrialSpec(TINY, "sst3", "quick")


def test_short_finetune_beats_the_majority_class(finetuned):
    assert finetuned.num_train == 2000 and finetuned.overlap == 0.0 and finetuned.source_checkpoint is None
    assert finetuned.metrics["accuracy"] >= 0.60 > MAJORITY + 0.05
    assert finetuned.score == finetuned.metrics["accuracy"]
    assert finetuned.steps == 3 * 63 and finetuned.tokens_per_s > 0
    losses = [p["loss"] for p in finetuned.curve]
    assert len(losses) >= 9 and losses[-1] < losses[0]


def test_result_json_and_checkpoint_round_trip(finetuned):
    saved = TrialResult.load(finetuned.checkpoint.replace("/checkpoint", "/result.json"))
    assert saved == TrialResult(**json.loads(json.dumps(finetuned.to_dict())))
    files = {p.name for p in Path(finetuned.checkpoint).iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= files
    again = evaluate_checkpoint(finetuned.checkpoint, "sst2", GLUE_DIR, num_threads=1)
    assert again == finetuned.metrics


def test_same_seed_same_metric_other_seed_other_run(tmp_path, cache):
    prof = get_profile("quick", max_train_samples=600, log_every=5)
    a, b = (trial(tmp_path / n, cache, prof) for n in ("a", "b"))
    assert a.metrics == b.metrics and a.curve == b.curve
    c = trial(tmp_path / "c", cache, prof, seed=7)
    assert c.curve != a.curve


def test_existing_workdir_is_never_overwritten(finetuned, cache):
    workdir = Path(finetuned.checkpoint).parent
    before = (workdir / "result.json").read_text()
    with pytest.raises(FlexiBertError, match="already exists"):
        trial(workdir, cache, get_profile("quick", max_train_samples=50))
    assert (workdir / "result.json").read_text() == before


@pytest.fixture(scope="module")
def mlm_seed(tmp_path_factory):
    corpus = train_texts(GLUE_DIR, get_task("sst2"))[:2000]
    out = tmp_path_factory.mktemp("seeds")
    (result,) = pretrain([TINY], corpus, VOCAB, out, MlmConfig(batch_size=32, max_steps=60, log_every=10),
                         num_threads=1)
    return result


def test_mlm_pretraining_loss_decreases(mlm_seed):
    losses = [p["loss"] for p in mlm_seed.curve]
    assert mlm_seed.steps == 60 and len(losses) == 6
    assert losses[0] > 9.0  # about ln(30522) = 10.3 at the start
    assert losses[-1] < losses[0] - 1.0
    saved = json.loads((Path(mlm_seed.checkpoint) / "pretrain.json").read_text())
    assert saved["steps"] == 60
    assert load_config(mlm_seed.checkpoint).mlm_decode_masked_only is False  # trained masked-only, saved as HF's


def test_transfer_init_records_overlap(tmp_path, cache, mlm_seed):
    l4 = SEED_CARDS["bert-l4-h128"]  # shares BERT-Tiny's two layers and embeddings
    prof = get_profile("quick", max_train_samples=300)
    r = trial(tmp_path / "l4", cache, prof, card=l4, init=mlm_seed.checkpoint, tokenizer=None)
    assert r.source_checkpoint == mlm_seed.checkpoint and r.tokenizer == mlm_seed.checkpoint
    assert 0 < r.overlap < 1 and r.overlap == pytest.approx(card_overlap(l4, TINY), abs=1e-9)
    same = trial(tmp_path / "tiny", cache, prof, init=mlm_seed.checkpoint, tokenizer=None)
    assert same.overlap == pytest.approx(1.0)


def test_init_with_another_vocabulary_is_refused(tmp_path, cache, mlm_seed):
    texts = train_texts(GLUE_DIR, get_task("sst2"))[:3000]
    other = cached_wordpiece(texts, cache, vocab_size=2000)
    with pytest.raises(FlexiBertError, match="vocabulary of 30522 tokens"):
        trial(tmp_path / "x", cache, get_profile("quick", max_train_samples=50), init=mlm_seed.checkpoint,
              tokenizer=other)


def test_bad_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "config.json").write_text('{"model_type": "flexibert", ')
    with pytest.raises(FlexiBertError, match="malformed JSON"):
        evaluate_checkpoint(tmp_path / "ckpt", "sst2", GLUE_DIR)


def test_cli_train_and_its_errors(tmp_path, cache, capsys):
    args = ["train", "--task", "sst2", "--seed-model", "bert-tiny", "--data-dir", str(GLUE_DIR),
            "--tokenizer", str(VOCAB), "--max-train-samples", "200", "--threads", "1", "--cache-dir", str(cache)]
    with pytest.raises(SystemExit) as ok:
        main(args + ["--workdir", str(tmp_path / "run")])
    assert ok.value.code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["steps"] == 7 and 0 <= out["metrics"]["accuracy"] <= 1
    assert (tmp_path / "run" / "result.json").exists()
    with pytest.raises(SystemExit) as ok:  # too few examples for the fewest updates: more epochs
        main(args + ["--workdir", str(tmp_path / "floor"), "--set", "min_steps=12"])
    assert ok.value.code == 0 and json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 12
    with pytest.raises(SystemExit) as bad:
        main(["train", "--task", "sst2", "--card", '{"l": 2, "a": [2, 2]}', "--workdir", str(tmp_path / "bad")])
    assert bad.value.code == 2 and "missing key" in capsys.readouterr().err
    with pytest.raises(SystemExit) as bad:
        main(["pretrain", "--seeds", "--out", str(tmp_path / "p")])
    assert bad.value.code == 2 and "exactly one corpus" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists() and not (tmp_path / "p").exists()


def test_cli_trains_a_custom_task_from_user_files(tmp_path, cache, capsys):
    import csv

    lines = (GLUE_DIR / "SST-2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:]
    rows = [line.split("\t") for line in lines]
    for name, part in (("train.csv", rows[:400]), ("dev.csv", rows[400:])):
        with open(tmp_path / name, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["review", "mood"])
            w.writerows([text, "happy" if y == "1" else "sad"] for text, y in part)
    task = {"name": "moods", "train": str(tmp_path / "train.csv"), "dev": str(tmp_path / "dev.csv"),
            "text_columns": ["review"], "label_column": "mood"}
    with pytest.raises(SystemExit) as ok:
        main(["train", "--task", json.dumps(task), "--seed-model", "bert-tiny",
              "--threads", "1", "--cache-dir", str(cache), "--workdir", str(tmp_path / "w")])
    assert ok.value.code == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["task"] == "moods" and out["steps"] == 13 and 0 <= out["metrics"]["accuracy"] <= 1
    # No tokenizer given: a WordPiece was trained on the training text and cached.
    result = TrialResult.load(tmp_path / "w" / "result.json")
    assert result.tokenizer.startswith(str(cache / "tokenizers" / "wordpiece-"))
    assert Path(result.tokenizer, "tokenizer.json").exists()
    with pytest.raises(SystemExit) as bad:
        main(["train", "--task", json.dumps({**task, "labels": ["happy", "neutral"]}), "--seed-model", "bert-tiny",
              "--workdir", str(tmp_path / "w2")])
    assert bad.value.code == 2 and "unknown label 'sad'" in capsys.readouterr().err


@pytest.fixture(scope="module")
def imported_bert(tmp_path_factory):
    """A HF BERT with the real uncased vocabulary (absolute positions), saved and imported as a seed is."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from flexibert.model.import_bert import import_bert
    from flexibert.train.tokenization import load_tokenizer

    root = tmp_path_factory.mktemp("bert")
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=30522, hidden_size=128, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=512, max_position_embeddings=512)
    BertForMaskedLM(cfg).save_pretrained(root / "hf")
    load_tokenizer(VOCAB).save_pretrained(root / "hf")  # not BertTokenizerFast(vocab_file=...): 5 tokens
    import_bert(root / "hf", root / "imported")
    return root / "imported"


def test_init_from_an_imported_bert_keeps_its_absolute_positions(tmp_path, cache, imported_bert):
    """The study's protocol: seeds imported from BERT checkpoints train and pass on their weights."""
    assert load_config(imported_bert).position_embedding_type == "absolute"
    prof = get_profile("quick", max_train_samples=300, log_every=5)
    r = trial(tmp_path / "t", cache, prof, init=imported_bert, tokenizer=None)
    assert load_config(r.checkpoint).position_embedding_type == "absolute"
    assert r.overlap == pytest.approx(1.0)  # same card: every encoder weight moved
    with pytest.raises(FlexiBertError, match="positions must be one of"):
        TrialSpec(TINY, "sst2", prof, positions="rotary")


def test_pooling_follows_the_init_checkpoint_unless_the_spec_says(tmp_path, cache, imported_bert):
    """A child of a mean-pooled (sentence-transformers) seed is read the same way, and so is its child;
    the spec's ``pooling`` overrides the inheritance."""
    import dataclasses

    from flexibert.model.checkpoint import save_checkpoint

    model, tok = load_checkpoint(imported_bert, head="base")
    assert model.config.classifier_pooling == "cls"  # a plain BERT
    model.config.classifier_pooling = "mean"
    mean_seed = save_checkpoint(model, tmp_path / "mean-seed", tok)
    prof = get_profile("quick", max_train_samples=200, log_every=5)
    child = trial(tmp_path / "child", cache, prof, init=mean_seed, tokenizer=None)
    assert load_config(child.checkpoint).classifier_pooling == "mean"
    grandchild = trial(tmp_path / "grandchild", cache, prof, init=child.checkpoint, tokenizer=None)
    assert load_config(grandchild.checkpoint).classifier_pooling == "mean"
    spec = TrialSpec(TINY, "sst2", prof, data=GLUE_DIR, init=mean_seed, num_threads=1, cache_dir=cache, pooling="cls")
    assert load_config(train_trial(spec, tmp_path / "told").checkpoint).classifier_pooling == "cls"
    with pytest.raises(FlexiBertError, match="pooling must be one of"):
        dataclasses.replace(spec, pooling="max")


def test_holdout_scores_on_validation_and_reports_dev(tmp_path, cache):
    from flexibert.train.data import load_split

    prof = get_profile("quick", max_train_samples=400, log_every=5)
    spec = TrialSpec(TINY, "sst2", prof, data=GLUE_DIR, tokenizer=VOCAB, num_threads=1, cache_dir=cache, holdout=200)
    r = train_trial(spec, tmp_path / "t")
    assert set(r.validation) == {"accuracy"} and set(r.metrics) == {"accuracy"}
    assert r.score == r.validation["accuracy"] != r.metrics["accuracy"]
    assert r.num_train == 400
    train = load_split(GlueDir(GLUE_DIR), get_task("sst2"), "train")
    rest, val = train.holdout(200, 7)
    assert len(val) == 200 and len(rest) < len(train) - 200  # leak-free: what shares their text is dropped
    assert len(train.holdout(200, 7, "random")[0]) == len(train) - 200
    assert val.texts == train.holdout(200, 7)[1].texts != train.holdout(200, 8)[1].texts  # fixed by its seed
