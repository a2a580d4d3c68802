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
    # The two best trials by validation score are retrained and the winner is chosen on validation;
    # its dev accuracy is what the run reports.
    confirmed = summary["confirmed"]
    assert [r["proxy"] for r in confirmed] == sorted((v for _, v in after), reverse=True)[:2]
    assert all(r["num_train"] == 600 and 0 <= r["validation"] <= 1 for r in confirmed)
    winner = max(confirmed, key=lambda r: r["validation"])
    assert summary["best_card"] == winner["card"] and summary["best_dev_accuracy"] == winner["dev"]
    assert winner["dev"] == winner["dev_metrics"]["accuracy"] > 0.5
    assert summary["latency_ms"]["batch_1"] > 0 and summary["latency_ms"]["batch_32"] > summary["latency_ms"]["batch_1"]
    assert set(summary) >= {"best_card", "best_dev_accuracy", "confirmed", "latency_ms", "trials_done", "wall_s",
                            "report_html"}
    html = run_dir / "report" / "report.html"
    assert summary["report_html"] == str(html) and html.stat().st_size > 100_000
    figures = {p.stem for p in (run_dir / "report").glob("*.png")}
    assert len(figures) >= 5, figures
    stages = json.loads((run_dir / "stages.json").read_text())
    assert set(stages) == {"space", "tokenizer", "seeds", "search", "confirm", "report"}
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
