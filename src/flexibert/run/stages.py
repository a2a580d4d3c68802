"""The main job's stages, each behind one signature: ``stage(run) -> value``, its value recorded once done.

:func:`run_stages` runs them in order and skips what ``<run>/stages.json`` (written
atomically) says is done, so rerunning the same command after an interruption resumes:
the search resumes its own database, seed pretraining skips seeds already saved, and the
confirmation keeps every finished retraining.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from flexibert._common import FlexiBertError, write_json
from flexibert.run.config import RunConfig
from flexibert.search.config import SCHEMA


class Reporter(Protocol):
    """What a run tells its user: messages, a stage's progress (a bar with an ETA), the search's state."""

    def log(self, message: str) -> None: ...

    def stage(self, name: str, done: int, total: int) -> None: ...

    def search(self, state: Any) -> None: ...


class Quiet:
    """A reporter that says nothing (tests, library use)."""

    def log(self, message: str) -> None:
        return None

    def stage(self, name: str, done: int, total: int) -> None:
        return None

    def search(self, state: Any) -> None:
        return None


@dataclass
class Run:
    """One run in progress: its config, its directory, what its stages produced, and who is told."""

    config: RunConfig
    dir: Path
    reporter: Reporter = field(default_factory=Quiet)
    done: dict[str, Any] = field(default_factory=dict)

    @property
    def search_dir(self) -> Path:
        return self.dir / "search"

    def threads(self) -> int:
        c = self.config
        return c.latency.threads or c.search.cpus_per_trial or os.cpu_count() or 1

    def search_config(self):
        """The search's config, derived from the run config and what the earlier stages produced."""
        from flexibert.search.budget import Budget

        data = self.done["data"]
        return self.config.search_config(
            self.done["space"], self.done["tokenizer"], data["vocab_size"], self.done["seeds"], data["holdout"],
            data["max_seq_len"], self.done.get("latency"), Budget.of(self.done.get("budget", self.config.budget)))


Stage = Callable[[Run], Any]

SPENT = "spent.json"  # each stage's seconds, summed over every invocation that finished it


def spent(run_dir: Path) -> dict[str, float]:
    """The seconds each finished stage took, over every invocation of the run (a stage run again, as the
    confirmation is for new training seeds, adds its time): what the run cost, however often it was resumed."""
    path = run_dir / SPENT
    return json.loads(path.read_text()) if path.exists() else {}


AFTER_SEARCH = ("confirm", "report")  # the stages a change of confirm.seeds runs again


def open_run(config: RunConfig, run_dir: Path, reporter: Reporter) -> Run:
    """The run in ``run_dir``: new, or resumed when it holds a run of the same config (another one is refused).

    A run stored by an earlier version resumes as it was measured (:meth:`RunConfig.resuming`); its
    stored config is left as it was written, so every later resume reads it the same way, but for new
    ``confirm.seeds`` (:data:`~flexibert.run.config.RECONFIRM`), written in as the confirmation runs again.
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    path, stages = run_dir / "config.json", run_dir / "stages.json"
    done = json.loads(stages.read_text()) if stages.exists() else {}
    if path.exists():
        stored = json.loads(path.read_text())
        try:
            config, again = config.resuming(stored)
        except FlexiBertError as e:
            raise FlexiBertError(f"run directory {run_dir}: {e}; use another --out") from None
        if stored.get("schema", 1) != SCHEMA:
            reporter.log(f"resuming a run stored at schema {stored.get('schema', 1)}: settings added since take "
                         f"what it was measured with (training.holdout_split {config.training.holdout_split})")
        if again:  # stages first: a kill between the two writes redoes this on resume
            done = {k: v for k, v in done.items() if k not in AFTER_SEARCH}
            write_json(stages, done)
            write_json(path, {**stored, "confirm": {**stored.get("confirm", {}), "seeds": list(config.confirm.seeds)}})
            reporter.log(f"confirming again with training seeds {list(config.confirm.seeds)}: the search and the "
                         "seeds already confirmed are kept")
    else:
        write_json(path, config.to_dict())
    return Run(config, run_dir, reporter, done)


def run_stages(run: Run, stages: list[tuple[str, Stage]]) -> None:
    """Run each stage not yet done, recording its value before the next starts."""
    for name, stage in stages:
        if name in run.done:
            continue
        t0 = time.perf_counter()
        run.done[name] = stage(run)
        ledger = spent(run.dir)
        write_json(run.dir / SPENT, {**ledger, name: round(ledger.get(name, 0.0) + time.perf_counter() - t0, 1)})
        write_json(run.dir / "stages.json", run.done)
