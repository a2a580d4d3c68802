"""The search end to end on the study's measured SST-2 table: real worker processes, real SQLite, real Ray."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flexibert._common import FlexiBertError
from flexibert.model.cost import flops
from flexibert.model.overlap import overlap
from flexibert.search.loop import SearchConfig, run_search
from flexibert.search.oracles import ReplayOracle, TrialRequest, load_table
from flexibert.search.store import RunStore
from flexibert.space.design_space import ModelCard
from flexibert.space.seeds import SEED_CARDS

from .conftest import STUDY_JSON

FLEXIBERT = [sys.executable, "-c", "from flexibert.cli import main; main()"]


@pytest.fixture(scope="module")
def measured(study):
    """card key -> measured SST-2 accuracy, read straight from the JSON."""
    return {ModelCard.from_dict(d).key: a["SST-2"] for d, a in zip(study["model_dicts"], study["accuracies"])
            if a["SST-2"] is not None}


def config(**kw) -> SearchConfig:
    return SearchConfig(task="sst2", oracle="replay", table=str(STUDY_JSON), **kw)


def check_run(run_dir: Path, measured: dict, study: dict) -> list:
    """Invariants of any finished run; returns its done trials in finishing order."""
    cards = {h: ModelCard.from_dict(d) for h, d in zip(study["hashes"], study["model_dicts"])}
    with RunStore(run_dir) as store:
        trials, done = store.trials(), store.trials("done")
        snapshots = store.snapshots()
    assert len({t.card_hash for t in trials}) == len(trials)  # no model twice
    for t in done:
        card = ModelCard.from_dict(t.card)
        assert cards[t.card_hash] == card
        assert t.value == measured[card.key]  # the oracle answered from the table
    seeds = {c.key for c in SEED_CARDS.values()}
    order = {t.card_hash: t.done_seq for t in done}
    for t in trials:
        if ModelCard.from_dict(t.card).key in seeds:
            assert t.source_hash is None
            continue
        # A source had finished before the trial was proposed, and the overlap is the card rule's.
        assert t.source_hash in order and t.threshold is not None
        assert t.overlap == pytest.approx(overlap(cards[t.card_hash], cards[t.source_hash]))
        assert t.overlap >= t.threshold - 1e-9 or t.threshold < 0.5
    assert snapshots and snapshots[-1]["n_trained"] == len(done)
    assert all(s["spearman"] is not None for s in snapshots if s["n_trained"] >= 3)
    return done


def test_replay_search_end_to_end(tmp_path, measured, study):
    run = tmp_path / "run"
    final = run_search(run, config(acquisition="ucb", budget=20, sim_seconds=0.1, seed=1), workers=2)
    assert final.reason == "budget" and final.done == 20 and final.failed == 0
    done = check_run(run, measured, study)
    assert final.best_value == max(t.value for t in done)
    assert final.held_out is not None and final.held_out.n == 20
    with RunStore(run) as store:
        spans = sorted((t.started_at, t.finished_at) for t in store.trials("done"))
        assert store.meta("config")["budget"] == 20
    # Two workers: some trial started while another was still running.
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:]))


def test_simulated_durations_follow_flops(measured):
    table = load_table(STUDY_JSON, "sst2")
    oracle = ReplayOracle.from_table(table, sim_seconds=1.0)
    tiny, mini = SEED_CARDS["bert-tiny"], SEED_CARDS["bert-mini"]
    ratio = oracle.durations[mini.key] / oracle.durations[tiny.key]
    assert ratio == pytest.approx(flops(mini) / flops(tiny))
    out = ReplayOracle.from_table(table)(TrialRequest(1, tiny.to_dict(), "unused"))
    assert out.value == measured[tiny.key]
    with pytest.raises(FlexiBertError, match="no measured value"):
        ReplayOracle.from_table(table)(TrialRequest(2, ModelCard.homogeneous(2, 2, 128, 999).to_dict(), "x"))


class FaultyOracle:
    """Replay, except that one card raises and another kills its own worker process."""

    def __init__(self, inner, raise_key: str, kill_key: str) -> None:
        self.inner, self.raise_key, self.kill_key = inner, raise_key, kill_key

    def __call__(self, request):
        key = ModelCard.from_dict(request.card).key
        if key == self.raise_key:
            raise RuntimeError("injected failure: out of luck")
        if key == self.kill_key:
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner(request)


def test_worker_failures_are_recorded_retried_once_and_the_search_goes_on(tmp_path, measured, study):
    table = load_table(STUDY_JSON, "sst2")
    oracle = FaultyOracle(ReplayOracle.from_table(table), SEED_CARDS["bert-mini"].key, SEED_CARDS["bert-l4-h128"].key)
    run = tmp_path / "faulty"
    final = run_search(run, config(budget=10), workers=2, oracle=oracle)
    assert final.reason == "budget" and final.failed == 2 and final.done == 8
    with RunStore(run) as store:
        failed = {ModelCard.from_dict(t.card).key: t for t in store.trials("failed")}
    raised, killed = failed[SEED_CARDS["bert-mini"].key], failed[SEED_CARDS["bert-l4-h128"].key]
    assert raised.attempt == 2 and "RuntimeError: injected failure: out of luck" in raised.error
    assert killed.attempt == 2 and "worker process died (killed by signal 9" in killed.error
    check_run(run, measured, study)


def test_convergence_stops_the_search(tmp_path):
    final = run_search(tmp_path / "conv", config(ci=0.05, budget=200, min_trained=10), workers=1)
    assert final.reason == "converged"
    assert 10 <= final.done < 200 and 1.96 * final.max_sigma < 0.05
    with RunStore(tmp_path / "conv") as store:
        sigmas = [s["max_sigma"] for s in store.snapshots() if s["n_trained"] >= 10]
    assert 1.96 * sigmas[-1] < 0.05 and all(1.96 * s >= 0.05 for s in sigmas[:-1])  # stopped at the first chance


def _query(run_dir: Path, sql: str) -> list[tuple]:
    """Read a run's database as another process would; a database still being created reads as empty."""
    db = sqlite3.connect(run_dir / "search.db")
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # no tables yet
        return []
    finally:
        db.close()


def _done_rows(run_dir: Path) -> list[tuple]:
    return _query(run_dir, "SELECT id, card_hash, value, source_hash, overlap, threshold, finished_at FROM trials"
                           " WHERE status = 'done' ORDER BY done_seq")


def _running(run_dir: Path) -> int:
    return len(_query(run_dir, "SELECT id FROM trials WHERE status = 'running'"))


def test_kill_9_mid_search_then_resume(tmp_path):
    args = ["search", "--task", "sst2", "--table", str(STUDY_JSON), "--acquisition", "ei", "--budget", "16",
            "--workers", "1", "--sim-seconds", "0.2", "--seed", "3", "--quiet"]
    full, cut = tmp_path / "full", tmp_path / "cut"
    proc = subprocess.Popen(FLEXIBERT + args + ["--out", str(cut)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while proc.poll() is None and time.monotonic() < deadline:
        if (cut / "search.db").exists() and len(_done_rows(cut)) >= 6 and _running(cut):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the search finished before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    # The uninterrupted reference runs beside the resumed search.
    reference_proc = subprocess.Popen(FLEXIBERT + args + ["--out", str(full)], stdout=subprocess.DEVNULL,
                                      stderr=subprocess.DEVNULL)
    before = _done_rows(cut)
    assert 6 <= len(before) < 16
    assert _running(cut)  # killed mid-trial: the trial is left running, to be re-queued
    r = subprocess.run(FLEXIBERT + ["search", "--resume", str(cut), "--quiet"], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert reference_proc.wait(timeout=120) == 0
    after = _done_rows(cut)
    assert after[: len(before)] == before  # nothing finished was lost or redone
    reference = _done_rows(full)
    assert len(after) == len(reference) == 16
    strip = [row[1:6] for row in after]  # drop ids and times: the searches themselves must match
    assert strip == [row[1:6] for row in reference]


def test_two_searches_cannot_write_one_run(tmp_path):
    run = tmp_path / "locked"
    run_search(run, config(budget=5), workers=1)
    with RunStore(run) as held:
        with pytest.raises(FlexiBertError, match="locked"):
            RunStore(run)
        r = subprocess.run(FLEXIBERT + ["search", "--resume", str(run), "--budget", "8"], capture_output=True,
                           text=True, timeout=60)
        assert r.returncode == 2 and "is locked" in r.stderr and "Traceback" not in r.stderr
        assert held.counts()["done"] == 5
    final = run_search(run, resume=True, budget=8)  # the lock is gone with its holder
    assert final.done == 8


def test_bad_input_exits_2_and_writes_nothing(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"model_dicts": [\n  {"l": 2,}]}')
    out = tmp_path / "never"
    r = subprocess.run(FLEXIBERT + ["search", "--task", "sst2", "--table", str(bad), "--out", str(out)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "line 2, column" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
    with pytest.raises(FlexiBertError, match="no task 'qqp-x'"):
        run_search(tmp_path / "x", SearchConfig(task="qqp-x", table=str(STUDY_JSON)))
    with pytest.raises(FlexiBertError, match="unknown acquisition"):
        config(acquisition="pi")
    with pytest.raises(FlexiBertError, match="unknown backend"):
        run_search(tmp_path / "nobackend", config(budget=4), backend="slurm")
    assert not (tmp_path / "nobackend").exists()
    with pytest.raises(FlexiBertError, match="no run to resume"):
        run_search(tmp_path / "missing", resume=True)
    run_search(tmp_path / "once", config(budget=4))
    with pytest.raises(FlexiBertError, match="already holds a run"):
        run_search(tmp_path / "once", config(budget=4))


def test_ray_backend(tmp_path, measured, study):
    pytest.importorskip("ray")
    final = run_search(tmp_path / "ray", config(acquisition="uncertainty", budget=10), workers=2, backend="ray")
    assert final.reason == "budget" and final.done == 10 and final.failed == 0
    check_run(tmp_path / "ray", measured, study)


def test_time_budget_stops_and_requeues_what_runs(tmp_path):
    run = tmp_path / "timed"
    final = run_search(run, config(budget=40, sim_seconds=0.5), workers=2, time_budget=4.0)
    assert final.reason == "time budget" and 1 <= final.done < 40
    with RunStore(run) as store:
        c = store.counts()
        assert c["running"] == 0 and c["queued"] >= 1  # abandoned trials wait for --resume
        queued = store.trials("queued")
    final = run_search(run, resume=True, budget=final.done + len(queued))
    assert final.reason == "budget" and final.queued == 0 and final.running == 0


@pytest.mark.slow
def test_train_oracle_search_with_weight_transfer(tmp_path):
    """Real fine-tuning on a small SST-2 subset: four seeds, then models that inherit their weights."""
    from .conftest import GLUE_DIR, SMALL_SPACE

    cfg = SearchConfig(task="sst2", oracle="train", space=str(SMALL_SPACE), library=str(tmp_path / "spaces"),
                       data=str(GLUE_DIR), max_train_samples=512, budget=6)
    final = run_search(tmp_path / "train", cfg, workers=2)
    assert final.reason == "budget" and final.done == 6 and final.failed == 0
    with RunStore(tmp_path / "train") as store:
        done = store.trials("done")
    assert all(0.4 < t.value < 1.0 and Path(t.checkpoint).is_dir() for t in done)
    transferred = [t for t in done if t.source_hash is not None]
    assert transferred and all(t.overlap > 0 for t in transferred)  # measured by the real transfer
