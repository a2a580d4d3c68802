"""The search end to end on the study's measured SST-2 table: real worker processes, real SQLite, real Ray."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from flexibert._common import FlexiBertError
from flexibert.cli import main
from flexibert.model.cost import flops
from flexibert.model.overlap import overlap
from flexibert.search.config import ReplayConfig, SearchConfig, TrainConfig
from flexibert.search.loop import run_search
from flexibert.search.oracles import ReplayOracle, TrainOracle, TrialRequest
from flexibert.search.store import RunStore
from flexibert.search.tables import load_table
from flexibert.space.design_space import ModelCard
from flexibert.space.seeds import SEED_CARDS

from .conftest import GLUE_DIR, ROOT, STUDY_JSON, VOCAB

FLEXIBERT = [sys.executable, "-c", "from flexibert.cli import main; main()"]


@pytest.fixture(scope="module")
def measured(study):
    """card key -> measured SST-2 accuracy, read straight from the JSON."""
    return {ModelCard.from_dict(d).key: a["SST-2"] for d, a in zip(study["model_dicts"], study["accuracies"])
            if a["SST-2"] is not None}


def config(sim_seconds: float = 0.0, **kw) -> SearchConfig:
    return SearchConfig("sst2", ReplayConfig(str(STUDY_JSON), sim_seconds=sim_seconds), **kw)


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

    def recover(self, workdir):
        return self.inner.recover(workdir)

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
            "--workers", "1", "--set", "oracle.sim_seconds=0.2", "--set", "seed=3", "--quiet"]
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
        run_search(tmp_path / "x", SearchConfig("qqp-x", ReplayConfig(str(STUDY_JSON))))
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
    # Long enough for workers to start (importing flexibert imports torch: seconds on a busy machine),
    # far too short for 400 trials of ~0.5 s.
    final = run_search(run, config(budget=400, sim_seconds=0.5), workers=2, time_budget=15.0)
    assert final.reason == "time budget" and 1 <= final.done < 400
    with RunStore(run) as store:
        c = store.counts()
        assert c["running"] == 0 and c["queued"] >= 1  # abandoned trials wait for --resume
        queued = store.trials("queued")
    final = run_search(run, resume=True, budget=final.done + len(queued))
    assert final.reason == "budget" and final.queued == 0 and final.running == 0


def test_time_budget_waits_for_a_first_result(tmp_path):
    """A budget shorter than any trial (a seed on long texts) still ends with a measured model, not with none;
    once one is measured, nothing new starts."""
    final = run_search(tmp_path / "slow", config(budget=400, sim_seconds=3.0), workers=2, time_budget=0.5)
    assert final.reason == "time budget" and final.done >= 1
    with RunStore(tmp_path / "slow") as store:
        assert sum(store.counts().values()) <= 4  # the first two dispatched, and at most one refill each


def test_time_budget_waits_for_a_model_inside_the_budget(tmp_path):
    """An imported seed over the budget is trained only for its children: a time budget it alone outlasts
    ends the search once a child inside the budget is measured, so there is an answer to confirm."""
    from flexibert.search.budget import Budget
    from flexibert.space.design_space import DesignSpace

    space = ROOT / "configs" / "spaces" / "minilm-family.yaml"
    cards = list(DesignSpace.from_yaml(space))
    seed = max(cards, key=flops)
    budget = Budget(max_flops=flops(seed) // 2)
    # A real oracle with stand-in values: what is tested is when the loop stops, not what it finds.
    values = {c.key: 0.5 + 0.4 * flops(c) / flops(seed) for c in cards}
    oracle = ReplayOracle(values, {seed.key: 3.0, **{c.key: 0.5 for c in cards if c != seed}})
    cfg = SearchConfig("sst2", TrainConfig(str(space), library=str(tmp_path / "spaces"),
                                           seed_checkpoints={seed.key: "imported"}, limits=budget), budget=40)
    final = run_search(tmp_path / "run", cfg, workers=2, time_budget=0.5, oracle=oracle)
    assert final.reason == "time budget"
    with RunStore(tmp_path / "run") as store:
        done = [ModelCard.from_dict(t.card) for t in store.trials("done")]
    assert seed in done and any(not budget.breaks(c) for c in done)


@pytest.mark.slow
def test_train_oracle_search_with_weight_transfer(tmp_path):
    """Real fine-tuning on a small SST-2 subset: four seeds, then models that inherit their weights."""
    from .conftest import SMALL_SPACE

    cfg = SearchConfig("sst2", TrainConfig(str(SMALL_SPACE), library=str(tmp_path / "spaces"), data=str(GLUE_DIR),
                                           max_train_samples=512), budget=6)
    final = run_search(tmp_path / "train", cfg, workers=2)
    assert final.reason == "budget" and final.done == 6 and final.failed == 0
    with RunStore(tmp_path / "train") as store:
        done = store.trials("done")
    assert all(0.4 < t.value < 1.0 and Path(t.checkpoint).is_dir() for t in done)
    transferred = [t for t in done if t.source_hash is not None]
    assert transferred and all(t.overlap > 0 for t in transferred)  # measured by the real transfer


# -- configs -----------------------------------------------------------------------------------------
def test_config_is_stored_by_oracle_kind_and_read_back(tmp_path):
    run = tmp_path / "stored"
    cfg = config(sim_seconds=0.01, acquisition="ei", budget=4, seed=7)
    run_search(run, cfg)
    with RunStore(run, read_only=True) as store:
        stored = store.meta("config")
    assert stored["oracle"] == {"kind": "replay", "table": str(STUDY_JSON), "sim_seconds": 0.01, "space": None,
                                "rule": "monotone", "library": None}
    assert SearchConfig.from_dict(stored) == cfg
    train = SearchConfig("sst2", TrainConfig("space.yaml", seed_checkpoints={"k": "ckpt"}, seed=3), k=5)
    assert SearchConfig.from_dict(train.to_dict()) == train and train.to_dict()["oracle"]["kind"] == "train"
    bad = [({**stored, "colour": "red"}, "unknown key(s) ['colour'] in the search"),
           ({**stored, "oracle": {**stored["oracle"], "epochs": 3}}, "unknown key(s) ['epochs'] in 'oracle' (replay)"),
           ({**stored, "oracle": {**stored["oracle"], "kind": "slurm"}}, "unknown oracle 'slurm'"),
           ({**stored, "oracle": {"kind": "train"}}, "missing key(s) ['space'] in 'oracle' (train)")]
    for d, message in bad:
        with pytest.raises(FlexiBertError) as e:
            SearchConfig.from_dict(d)
        assert message in str(e.value) and "\n" not in str(e.value)
    # A damaged stored config stops --resume with one line, and changes nothing.
    db = sqlite3.connect(run / "search.db")
    with db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps({**stored, "colour": "red"}),))
    db.close()
    r = subprocess.run(FLEXIBERT + ["search", "--resume", str(run), "--budget", "6", "--quiet"], capture_output=True,
                       text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and lines[0].startswith(
        "error: run config: unknown key(s) ['colour'] in the search; expected [")
    assert len(_done_rows(run)) == 4


def test_a_run_stored_with_the_flat_config_resumes(tmp_path):
    """Runs made before each oracle had its own config stored one flat dict; they resume as before."""
    run = tmp_path / "flat"
    run_search(run, config(budget=4, seed=2))
    flat = {"task": "sst2", "oracle": "replay", "table": str(STUDY_JSON), "space": None, "rule": "monotone",
            "library": None, "acquisition": "ucb", "beta": 2.0, "ci": 0.005, "k": 10, "seed": 2, "budget": 4,
            "sim_seconds": 0.0, "profile": "quick", "data": None, "max_train_samples": None, "tokenizer": None,
            "seed_checkpoints": None, "max_attempts": 2, "min_trained": 10, "threshold_start": 0.9,
            "threshold_step": 0.1}
    db = sqlite3.connect(run / "search.db")
    with db:
        db.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(flat),))
    db.close()
    final = run_search(run, resume=True, budget=6)
    assert final.done == 6
    with RunStore(run, read_only=True) as store:
        assert SearchConfig.from_dict(store.meta("config")) == config(budget=6, seed=2)
    train = SearchConfig.from_dict({**flat, "oracle": "train", "space": "s.yaml", "seed": 5})
    # ... as they were measured: a holdout drawn then was a random one (schema 1).
    assert train.oracle == TrainConfig("s.yaml", seed=5, holdout_split="random") and train.seed == 5


def test_cli_builds_each_oracles_config(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where the default library goes
    space = _tiny_space(tmp_path)
    out = tmp_path / "train-run"
    with pytest.raises(SystemExit) as done:  # no time to train: only the config is stored
        main(["search", "--task", "sst2", "--space", str(space), "--set", f"oracle.data={GLUE_DIR}", "--set",
              "oracle.max_train_samples=64", "--set", "seed=5", "--set", "oracle.seed=5", "--acquisition", "ei",
              "--time-budget", "0", "--out", str(out), "--quiet"])
    assert done.value.code == 0, capsys.readouterr().err
    with RunStore(out, read_only=True) as store:
        cfg = SearchConfig.from_dict(store.meta("config"))
    assert cfg.seed == 5 and cfg.acquisition == "ei" and cfg.budget is None
    assert cfg.oracle == TrainConfig(str(space.resolve()), library=str(tmp_path.resolve() / "runs" / "spaces"),
                                     data=str(GLUE_DIR), max_train_samples=64, seed=5)
    cases = [
        (["--task", "sst2", "--table", str(STUDY_JSON), "--set", "oracle.profile=paper"],
         "unknown key(s) ['profile']"),
        (["--task", "sst2", "--oracle", "train", "--space", str(space), "--table", str(STUDY_JSON)],
         "unknown key(s) ['table']"),
        (["--task", "sst2", "--table", str(STUDY_JSON), "--set", "oracle.sim_seconds"], "expected KEY=VALUE"),
        (["--task", "sst2", "--oracle", "replay"], "missing key(s) ['table'] in 'oracle' (replay)"),
        (["--task", "sst2"], "missing key(s) ['space'] in 'oracle' (train)"),
        (["--oracle", "replay", "--table", str(STUDY_JSON)], "--task is required for a new search"),
        (["--task", "sst2", "--oracle", "grid", "--table", str(STUDY_JSON)], "unknown oracle 'grid'"),
        (["--resume", str(out), "--set", "seed=1", "--table", str(STUDY_JSON)],
         "--resume takes the run's config from its database; drop ['--table', '--set']"),
    ]
    for args, message in cases:
        if "--resume" not in args:
            args = [*args, "--out", str(tmp_path / "never")]
        with pytest.raises(SystemExit) as done:
            main(["search", *args, "--quiet"])
        err = capsys.readouterr().err
        assert done.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)
    assert not (tmp_path / "never").exists()


# -- readers -----------------------------------------------------------------------------------------
def test_readers_work_while_a_search_writes_and_never_write(tmp_path):
    from flexibert.report.run import run_report_data
    from flexibert.search.results import RunResults

    run = tmp_path / "live"
    proc = subprocess.Popen(FLEXIBERT + ["search", "--task", "sst2", "--table", str(STUDY_JSON), "--budget", "300",
                                         "--set", "oracle.sim_seconds=0.3", "--quiet", "--out", str(run)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            if (run / "search.db").exists() and len(_done_rows(run)) >= 5:
                break
            time.sleep(0.1)
        assert proc.poll() is None and len(_done_rows(run)) >= 5
        with pytest.raises(FlexiBertError, match="is locked"):
            RunStore(run)  # the live search holds the writer's lock
        with RunStore(run, read_only=True) as reader:
            done = reader.trials("done")
            table = Path(SearchConfig.from_dict(reader.meta("config")).oracle.table)
            assert len(done) >= 5 and table == STUDY_JSON.resolve()  # stored resolved: ../shared may be a link
            with pytest.raises(FlexiBertError, match="open read-only"):
                reader.set_meta("config", {})
            with pytest.raises(sqlite3.OperationalError, match="readonly"):
                reader.db.execute("DELETE FROM trials")
        assert RunResults(run).best_trial.value >= max(t.value for t in done)  # export's reader, on a plain search directory
        assert len(run_report_data(run).measured) >= len(done)  # the report's reader
        rows = _done_rows(run)
        assert [r[0] for r in rows[: len(done)]] == [t.id for t in done]  # nothing was lost
        while proc.poll() is None and len(_done_rows(run)) <= len(rows) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.poll() is None and len(_done_rows(run)) > len(rows)  # the search went on, never blocked
    finally:
        proc.kill()
        proc.wait()


def test_read_only_store_errors_are_one_line(tmp_path):
    from flexibert.search.store import search_dir

    cases = [(tmp_path / "absent", "no search database in"), (tmp_path / "garbage", "is unreadable")]
    (tmp_path / "garbage").mkdir()
    (tmp_path / "garbage" / "search.db").write_bytes(b"not a database" * 100)
    for path, message in cases:
        with pytest.raises(FlexiBertError) as e:
            RunStore(path, read_only=True)
        assert message in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(FlexiBertError, match="is not a search or run directory"):
        search_dir(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage"]  # nothing was created


# -- attempts ----------------------------------------------------------------------------------------
class FailsFirstAttempt:
    """Replay, except that every trial's first attempt writes a partial file in its workdir and raises."""

    def __init__(self, inner, log: Path) -> None:
        self.inner, self.log = inner, log

    def recover(self, workdir):
        return self.inner.recover(workdir)

    def __call__(self, request):
        first = not self.log.exists() or f"{request.trial_id} " not in self.log.read_text()
        with open(self.log, "a") as fh:
            fh.write(f"{request.trial_id} {request.workdir}\n")
        if first:
            Path(request.workdir).mkdir(parents=True, exist_ok=True)
            (Path(request.workdir) / "partial").write_text("killed half-way")
            raise RuntimeError("injected failure after a partial write")
        return self.inner(request)


def test_each_attempt_has_its_own_directory(tmp_path):
    log, run = tmp_path / "calls.txt", tmp_path / "attempts"
    final = run_search(run, config(budget=4), oracle=FailsFirstAttempt(ReplayOracle.from_table(
        load_table(STUDY_JSON, "sst2")), log))
    assert final.done == 4 and final.failed == 0
    calls: dict[int, list[str]] = {}
    for line in log.read_text().splitlines():
        trial, workdir = line.split(" ", 1)
        calls.setdefault(int(trial), []).append(workdir)
    assert sorted(calls) == [1, 2, 3, 4]
    for first, second in calls.values():
        assert first != second and Path(first).parent == Path(second).parent
        assert (Path(first) / "partial").exists() and not (Path(second) / "partial").exists()
        assert Path(first).is_relative_to(run.resolve() / "trials")


TINY_SPACE = {"name": "tiny", "layers": [2], "heads": [2, 4], "hidden": [128, 256], "feed_forward": [512, 1024],
              "similarity": ["sdp", "wma"]}


def _tiny_space(tmp_path: Path) -> Path:
    import yaml

    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(TINY_SPACE))
    return path


def train_config(tmp_path: Path) -> SearchConfig:
    """One real trial of BERT-Tiny on 64 SST-2 sentences (seconds)."""
    return SearchConfig("sst2", TrainConfig(str(_tiny_space(tmp_path)), library=str(tmp_path / "spaces"),
                                            data=str(GLUE_DIR), tokenizer=str(VOCAB), max_train_samples=64), budget=1)


class TrainsThenDies(TrainOracle):
    """Trains for real, logging each call; the first call then dies before reporting: its own
    worker is killed, or with ``kill_search`` the search process too (as ``kill -9`` would)."""

    def __init__(self, log: str, kill_search: bool = False) -> None:
        super().__init__("sst2", TrainConfig("space.yaml", data=str(GLUE_DIR), tokenizer=str(VOCAB), seed=0,
                                             max_train_samples=64))
        self.log, self.kill_search = log, kill_search

    def __call__(self, request):
        first = not os.path.exists(self.log)
        with open(self.log, "a") as fh:
            fh.write(request.workdir + "\n")
        out = super().__call__(request)
        if first:
            if self.kill_search:
                os.kill(os.getppid(), signal.SIGKILL)
            os.kill(os.getpid(), signal.SIGKILL)
        return out


def _check_recovered(run: Path, log: Path) -> None:
    """The one trial is done with the result its first attempt wrote, trained once."""
    attempt = log.read_text().split()
    assert len(attempt) == 1  # trained once, never again
    result = json.loads((Path(attempt[0]) / "result.json").read_text())
    with RunStore(run, read_only=True) as store:
        (t,) = store.trials()
    assert t.status == "done" and t.error is None
    assert t.value == result["score"] and t.checkpoint == result["checkpoint"] == str(Path(attempt[0]) / "checkpoint")
    oracle = TrainOracle("sst2", train_config(run.parent).oracle)
    assert oracle.recover(attempt[0]).value == t.value
    weights = Path(t.checkpoint) / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a torn checkpoint is never trusted
    assert oracle.recover(attempt[0]) is None
    assert oracle.recover(str(run)) is None  # no result at all


def test_a_finished_attempt_whose_worker_died_is_recovered_not_retrained(tmp_path):
    run, log = tmp_path / "died", tmp_path / "calls.txt"
    final = run_search(run, train_config(tmp_path), oracle=TrainsThenDies(str(log)))
    assert final.done == 1 and final.failed == 0
    _check_recovered(run, log)


def test_a_finished_attempt_of_a_killed_search_is_recovered_on_resume(tmp_path):
    run, log = tmp_path / "killed", tmp_path / "calls.txt"
    script = ("import sys; from pathlib import Path; from tests.test_search import TrainsThenDies, train_config; "
              "from flexibert.search.loop import run_search; "
              f"run_search({str(run)!r}, train_config(Path({str(tmp_path)!r})), "
              f"oracle=TrainsThenDies({str(log)!r}, kill_search=True))")
    r = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == -signal.SIGKILL, r.stderr[-2000:]
    assert _running(run) == 1 and not _done_rows(run)  # killed after the trial's files, before its report
    final = run_search(run, resume=True, oracle=TrainsThenDies(str(log)))
    assert final.done == 1 and final.failed == 0
    _check_recovered(run, log)


def test_retention_interval_pairs_training_seeds():
    """The dev scores the refitted pretrained-sst2 run measured (README), as counts of SST-2's 872 dev sentences:
    the child and all-MiniLM-L6-v2 with training seeds 42, 1 and 2; scipy's Student t is the oracle."""
    import numpy as np
    from scipy import stats

    from flexibert.search.results import paired_ratio_ci95

    child = {42: 762, 1: 762, 2: 755}
    seed = {42: 776, 1: 767, 2: 783}
    ratios = [child[s] / seed[s] for s in (42, 1, 2)]
    lo, hi = stats.t.interval(0.95, 2, loc=np.mean(ratios), scale=stats.sem(ratios))
    num = [{"seed": s, "dev": n / 872} for s, n in child.items()]
    den = [{"seed": s, "dev": n / 872} for s, n in reversed(seed.items())] + [{"seed": 9, "dev": 0.5}]
    assert paired_ratio_ci95(num, den) == pytest.approx((hi - lo) / 2)  # paired by seed, not by position
    assert paired_ratio_ci95(num[:1], den) is None  # one seed in common: no interval
