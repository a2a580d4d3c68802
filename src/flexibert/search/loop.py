"""The search loop: the active learner, the run database, a backend and an oracle wired together.

Asynchronous: whenever any trial finishes it is recorded, the surrogate is refit
and free workers get the next proposals at once, so no worker waits for the
slowest trial of a batch. Everything the loop decides is recorded before it acts
on it (a trial row before its submission, a result before the refit), so
:func:`run_search` with ``resume=True`` continues a killed run where it stood.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from flexibert._common import FlexiBertError
from flexibert.search.acquisition import check_acquisition
from flexibert.search.backends import (
    BACKENDS,
    Backend,
    Finished,
    make_backend,
    threads_per_worker,
)
from flexibert.search.learner import ActiveLearner, RelaxationSchedule
from flexibert.search.oracles import (
    ReplayOracle,
    TrainOracle,
    TrialOutcome,
    TrialRequest,
    load_table,
)
from flexibert.search.store import RunStore, Trial
from flexibert.search.surrogate import HeldOut
from flexibert.space.design_space import DesignSpace, ModelCard
from flexibert.space.seeds import SEED_CARDS

ORACLES: tuple[str, ...] = ("replay", "train")
DEFAULT_LIBRARY = "runs/spaces"  # where ``flexibert space build`` puts space libraries


@dataclass
class SearchConfig:
    """What defines a run; stored in its database and reused as-is by ``--resume``."""

    task: str
    oracle: str = "replay"
    table: str | None = None  # replay: a measured table in the study's JSON format
    space: str | None = None  # a space YAML: the candidates of a train search
    rule: str = "monotone"
    library: str | None = None  # where the space library (embeddings, neighbours) is built or found
    acquisition: str = "ucb"
    beta: float = 2.0
    ci: float = 0.005
    k: int = 10
    seed: int = 0
    budget: int | None = None  # trials, seeds included
    sim_seconds: float = 0.0  # replay: simulated seconds for a model of median FLOPs
    profile: str = "quick"  # train: the training profile
    data: str | None = None  # train: the task's data
    max_train_samples: int | None = None  # train: a fixed subset of the training split
    tokenizer: str | None = None
    seed_checkpoints: dict[str, str] | None = None  # train: card key -> pretrained checkpoint a seed starts from
    max_attempts: int = 2
    min_trained: int = 10
    threshold_start: float = 0.9
    threshold_step: float = 0.1

    def __post_init__(self) -> None:
        if self.oracle not in ORACLES:
            raise FlexiBertError(f"unknown oracle {self.oracle!r}; expected one of {list(ORACLES)}")
        if self.oracle == "replay" and not self.table:
            raise FlexiBertError("the replay oracle needs --table (a measured table JSON)")
        if self.oracle == "train" and not self.space:
            raise FlexiBertError("the train oracle needs --space (a design-space YAML)")
        check_acquisition(self.acquisition)
        if self.budget is not None and self.budget < 1:
            raise FlexiBertError(f"--budget must be >= 1 trial, got {self.budget}")
        if not self.ci > 0:
            raise FlexiBertError(f"the confidence interval must be > 0, got {self.ci}")
        if self.max_attempts < 1:
            raise FlexiBertError(f"max_attempts must be >= 1, got {self.max_attempts}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SearchConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise FlexiBertError(f"run config: unknown key(s) {unknown}")
        return cls(**d)


@dataclass
class Problem:
    """The cards a search ranges over, their embeddings and neighbours, and what can be proposed."""

    cards: list[ModelCard]
    hashes: list[str]
    X: np.ndarray
    neighbors: np.ndarray | None
    candidates: np.ndarray
    seeds: list[int]
    oracle: Callable[[TrialRequest], TrialOutcome]


def _space_library(config: SearchConfig):
    from flexibert.space.library import build_space

    space = DesignSpace.from_yaml(config.space, rule=config.rule)
    return build_space(space, config.library or DEFAULT_LIBRARY)


def build_problem(config: SearchConfig) -> Problem:
    """Load the cards, embeddings, candidates and oracle a config describes."""
    if config.oracle == "replay":
        table = load_table(config.table, config.task)
        oracle: Callable = ReplayOracle.from_table(table, config.sim_seconds)
        if table.embeddings is not None:
            cards, X, neighbors = table.cards, table.embeddings, table.neighbors
            if config.space:
                space = DesignSpace.from_yaml(config.space, rule=config.rule)
                for i in table.measured:
                    space.validate(cards[i])
            hashes = table.hashes or _fingerprints(cards)
            candidates = table.measured
        else:
            if not config.space:
                raise FlexiBertError(f"measured table {table.path} has no embeddings: give --space to embed its models")
            lib = _space_library(config)
            cards, X, neighbors, hashes = lib.cards, lib.embeddings, lib.neighbours, lib.hashes
            where = {c.key: i for i, c in enumerate(cards)}
            missing = [str(table.cards[i]) for i in table.measured if table.cards[i].key not in where]
            if missing:
                raise FlexiBertError(f"measured model {missing[0]} is not in the space {config.space}")
            candidates = np.array(sorted(where[table.cards[i].key] for i in table.measured))
    else:
        lib = _space_library(config)
        cards, X, neighbors, hashes = lib.cards, lib.embeddings, lib.neighbours, lib.hashes
        candidates = np.arange(len(cards))
        oracle = TrainOracle(config.task, config.profile, config.data, config.tokenizer, config.seed,
                             config.max_train_samples)
    where = {c.key: i for i, c in enumerate(cards)}
    seeds = [where[c.key] for c in SEED_CARDS.values() if c.key in where]
    if len(seeds) < 2:
        raise FlexiBertError("the space holds fewer than two of the seed models (BERT-Tiny, -Mini, L2-H256, L4-H128)")
    return Problem(list(cards), list(hashes), np.asarray(X, dtype=float), neighbors, np.asarray(candidates), seeds,
                   oracle)


def _fingerprints(cards: list[ModelCard]) -> list[str]:
    from flexibert.space.graphs import fingerprint

    return [fingerprint(c) for c in cards]


@dataclass
class Progress:
    """What the live view shows; also the search's final answer."""

    done: int = 0
    running: int = 0
    queued: int = 0
    failed: int = 0
    best_value: float | None = None
    best_card: str | None = None
    max_sigma: float | None = None
    held_out: HeldOut | None = None
    threshold: float = 0.9
    ci: float = 0.005
    elapsed: float = 0.0
    reason: str | None = None  # why it stopped: budget, time budget, converged, exhausted


class Search:
    """One run: owns its store (and lock) for its lifetime. Use :func:`run_search`."""

    def __init__(self, store: RunStore, config: SearchConfig, backend: Backend, problem: Problem,
                 oracle: Callable[[TrialRequest], TrialOutcome] | None = None) -> None:
        self.store, self.config, self.backend, self.problem = store, config, backend, problem
        self.oracle = oracle or problem.oracle
        p = problem
        self.learner = ActiveLearner(
            p.cards, p.X, seeds=p.seeds, candidates=p.candidates, neighbors=p.neighbors, k=config.k,
            acquisition=config.acquisition, beta=config.beta, ci=config.ci, seed=config.seed,
            min_trained=config.min_trained,
            schedule=RelaxationSchedule(start=config.threshold_start, step=config.threshold_step))
        self.progress = Progress(threshold=config.threshold_start, ci=config.ci)
        self._restore()

    # -- state ------------------------------------------------------------------------------------
    def _restore(self) -> None:
        """Rebuild the learner from the database; a no-op for a new run."""
        self.store.requeue_running()
        for t in self.store.trials("done"):
            self.learner.tell(t.card_index, t.value)
        for t in self.store.trials("failed"):
            self.learner.tell_failed(t.card_index)
        snap = self.store.latest_snapshot()
        thresholds = [t.threshold for t in self.store.trials() if t.threshold is not None]
        threshold = min(thresholds + [snap["threshold"] if snap else self.config.threshold_start])
        self.learner.restore(threshold, snap["theta"] if snap else None, snap["n_optimized"] if snap else 0)
        if len(self.learner.trained) >= 2:
            self._refit(store=snap is None or snap["n_trained"] != len(self.learner.trained))

    def _refit(self, store: bool = True) -> None:
        snap = self.learner.refit()
        if snap is not None and store:
            self.store.add_snapshot(snap.to_dict(), self.problem.hashes[snap.best_index])

    def _update_progress(self) -> None:
        c = self.store.counts()
        p = self.progress
        p.done, p.running, p.queued, p.failed = c["done"], c["running"], c["queued"], c["failed"]
        p.threshold = self.learner.threshold
        s = self.learner.snapshot
        if s is not None:
            p.best_value, p.best_card = s.best_value, str(self.problem.cards[s.best_index])
            p.max_sigma, p.held_out = s.max_sigma, s.held_out
        elif self.learner.trained:
            best = max(self.learner.trained, key=self.learner.trained.__getitem__)
            p.best_value, p.best_card = self.learner.trained[best], str(self.problem.cards[best])

    # -- dispatch ---------------------------------------------------------------------------------
    def _request(self, t: Trial) -> TrialRequest:
        source = None
        if t.source_index is not None:
            rows = [s for s in self.store.trials("done") if s.card_index == t.source_index]
            source = rows[0].checkpoint if rows else None
        elif self.config.seed_checkpoints:
            source = self.config.seed_checkpoints.get(ModelCard.from_dict(t.card).key)
        workdir = self.store.run_dir / "trials" / f"{t.id:05d}-{t.card_hash[:8]}"
        return TrialRequest(t.id, t.card, str(workdir), source, threads_per_worker(self.backend.workers))

    def _dispatch(self, allow_new: bool) -> None:
        while self.backend.running() < self.backend.workers:
            queued = self.store.trials("queued")
            if queued:
                trial = queued[0]
            elif allow_new and (self.config.budget is None or sum(self.store.counts().values()) < self.config.budget):
                busy = [t.card_index for t in self.store.trials("running")]
                p = self.learner.ask(busy)
                if p is None:
                    return
                trial = self.store.trial(self.store.add_trial(
                    p.index, p.card.to_dict(), self.problem.hashes[p.index], source_index=p.source,
                    source_hash=None if p.source is None else self.problem.hashes[p.source],
                    overlap=None if p.source is None else p.overlap, threshold=p.threshold))
            else:
                return
            trial = self.store.start(trial.id)
            self.backend.submit(trial.id, self.oracle, self._request(trial))

    def _record(self, f: Finished) -> bool:
        """Store one finished trial; True when it added a result."""
        t = self.store.trial(f.trial_id)
        error = f.error
        if error is None and not (isinstance(f.result, TrialOutcome) and np.isfinite(f.result.value)):
            error = f"oracle returned no finite score: {f.result!r}"
        if error is not None:
            retry = t.attempt < self.config.max_attempts
            self.store.fail(t.id, error, retry)
            if not retry:
                self.learner.tell_failed(t.card_index)
            return False
        out: TrialOutcome = f.result
        self.store.finish(t.id, out.value, out.metrics, out.checkpoint, out.overlap)
        self.learner.tell(t.card_index, out.value)
        return True

    # -- the loop ---------------------------------------------------------------------------------
    def run(self, time_budget: float | None = None, on_progress: Callable[[Progress], None] | None = None,
            poll_s: float = 1.0) -> Progress:
        t0 = time.monotonic()
        reason: str | None = None
        try:
            while True:
                if reason is None:
                    reason = self.learner.stop_reason()
                if reason is None and self.config.budget is not None \
                        and sum(self.store.counts().values()) >= self.config.budget:
                    reason = "budget"
                elapsed = time.monotonic() - t0
                if time_budget is not None and elapsed >= time_budget:
                    reason = "time budget"
                    break
                self._dispatch(allow_new=reason is None)
                if self.backend.running() == 0:
                    reason = reason or "exhausted"
                    break
                wait = poll_s if time_budget is None else max(0.01, min(poll_s, time_budget - elapsed))
                finished = self.backend.wait_any(wait)
                if any([self._record(f) for f in finished]):
                    self._refit()
                self._update_progress()
                self.progress.elapsed = time.monotonic() - t0
                if on_progress:
                    on_progress(self.progress)
        finally:
            if self.backend.running():
                self.backend.close()  # abandon what still runs; it is re-queued on resume
                self.store.requeue_running()
        self._update_progress()
        self.progress.reason, self.progress.elapsed = reason, time.monotonic() - t0
        if on_progress:
            on_progress(self.progress)
        return self.progress


def run_search(run_dir: str | Path, config: SearchConfig | None = None, *, resume: bool = False,
               workers: int = 1, backend: str = "local", address: str | None = None, budget: int | None = None,
               time_budget: float | None = None, on_progress: Callable[[Progress], None] | None = None,
               oracle: Callable[[TrialRequest], TrialOutcome] | None = None) -> Progress:
    """Start a run in ``run_dir`` from ``config``, or continue it with ``resume=True``.

    ``budget`` (trials) overrides the stored one, so a finished run can be extended;
    ``time_budget`` (seconds) bounds this invocation. ``oracle`` replaces the config's
    (fault injection, custom measurements).
    """
    if resume == (config is not None):
        raise FlexiBertError("give a config for a new run, or resume=True for an existing one (not both)")
    if backend not in BACKENDS:
        raise FlexiBertError(f"unknown backend {backend!r}; expected one of {list(BACKENDS)}")
    run_dir = Path(run_dir)
    problem = None if resume else build_problem(config)  # bad input fails before anything is written
    store = RunStore(run_dir, create=not resume)
    try:
        if resume:
            config = SearchConfig.from_dict(store.meta("config"))
            problem = build_problem(config)
        if budget is not None:
            config = dataclasses.replace(config, budget=budget)
        store.set_meta("config", config.to_dict())
        be = make_backend(backend, workers, address)
        try:
            return Search(store, config, be, problem, oracle).run(time_budget, on_progress)
        finally:
            be.close()
    finally:
        store.close()
