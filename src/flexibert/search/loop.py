"""The search loop: the active learner, the run database, a backend and an oracle wired together.

Asynchronous: whenever any trial finishes it is recorded, the surrogate is refit
and free workers get the next proposals at once, so no worker waits for the
slowest trial of a batch. Everything the loop decides is recorded before it acts
on it (a trial row before its submission, a result before the refit), so
:func:`run_search` with ``resume=True`` continues a killed run where it stood.

Each attempt at a trial writes to a directory of its own
(``trials/<id>-<hash>/attempt-<n>``, the n-th launch), so files a killed attempt left
never block the next one; and an attempt that finished its work but died before
reporting it is not redone: :meth:`Oracle.recover` takes its outcome back.
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from flexibert._common import FlexiBertError
from flexibert.search.backends import (
    BACKENDS,
    Backend,
    Finished,
    TrialResources,
    make_backend,
)
from flexibert.search.budget import Budget
from flexibert.search.config import SearchConfig, TrainConfig, space_library
from flexibert.search.learner import ActiveLearner, RelaxationSchedule
from flexibert.search.oracles import (
    Oracle,
    ReplayOracle,
    TrainOracle,
    TrialOutcome,
    TrialRequest,
)
from flexibert.search.store import RunStore, Trial
from flexibert.search.surrogate import HeldOut
from flexibert.search.tables import load_table
from flexibert.space.design_space import DesignSpace, ModelCard
from flexibert.space.seeds import SEED_CARDS


@dataclass
class Problem:
    """The cards a search ranges over, their embeddings and neighbours, what can be proposed, and what can be
    the answer (``within``: inside the budget; seeds over it are trained only for their children to inherit)."""

    cards: list[ModelCard]
    hashes: list[str]
    X: np.ndarray
    neighbors: np.ndarray | None
    candidates: np.ndarray
    seeds: list[int]
    oracle: Oracle
    within: np.ndarray


def build_problem(config: SearchConfig) -> Problem:
    """Load the cards, embeddings, candidates and oracle a config describes."""
    oc = config.oracle
    if isinstance(oc, TrainConfig):
        lib = space_library(oc)
        cards, X, neighbors, hashes = lib.cards, lib.embeddings, lib.neighbours, lib.hashes
        oracle: Oracle = TrainOracle(config.task, oc)
        candidates = within = _within_budget(cards, oc)
    else:
        table = load_table(oc.table, config.task)
        oracle = ReplayOracle.from_table(table, oc.sim_seconds)
        if table.embeddings is not None:
            cards, X, neighbors = table.cards, table.embeddings, table.neighbors
            if oc.space:
                space = DesignSpace.from_yaml(oc.space, rule=oc.rule)
                for i in table.measured:
                    space.validate(cards[i])
            hashes = table.hashes or _fingerprints(cards)
            candidates = table.measured
        else:
            if not oc.space:
                raise FlexiBertError(f"measured table {table.path} has no embeddings: give --space to embed its models")
            lib = space_library(oc)
            cards, X, neighbors, hashes = lib.cards, lib.embeddings, lib.neighbours, lib.hashes
            where = {c.key: i for i, c in enumerate(cards)}
            missing = [str(table.cards[i]) for i in table.measured if table.cards[i].key not in where]
            if missing:
                raise FlexiBertError(f"measured model {missing[0]} is not in the space {oc.space}")
            candidates = np.array(sorted(where[table.cards[i].key] for i in table.measured))
        within = candidates
    where = {c.key: i for i, c in enumerate(cards)}
    if isinstance(oc, TrainConfig) and oc.seed_checkpoints:  # the user's own seeds, e.g. a pretrained encoder
        outside = [key for key in oc.seed_checkpoints if key not in where]
        if outside:
            raise FlexiBertError(f"seed model {outside[0]} is not in the space {oc.space}")
        seeds = [where[key] for key in oc.seed_checkpoints]
        candidates = np.union1d(candidates, seeds)  # seeds are trained whatever the budget: children inherit them
    else:
        seeds = [where[c.key] for c in SEED_CARDS.values() if c.key in where]
        if not seeds:
            raise FlexiBertError("the space holds none of the study's seed models (BERT-Tiny, -Mini, L2-H256, "
                                 "L4-H128): give seed checkpoints")
    if neighbors is None:  # neighbours stay those of the embedding: weight transfer follows structure
        from flexibert.space.embed import nearest_neighbours

        neighbors = nearest_neighbours(np.asarray(X, dtype=float), config.k)[0]
    X = surrogate_X(config, cards, X)
    return Problem(list(cards), list(hashes), X, neighbors, np.asarray(candidates), seeds,
                   oracle, np.asarray(within))


def surrogate_X(config: SearchConfig, cards: list[ModelCard], embeddings: np.ndarray) -> np.ndarray:
    """The surrogate's inputs: the embedding plus card statistics scaled by the search's space
    (or by the cards' own ranges when a replay names no space); the report refits on the same."""
    from flexibert.search.features import surrogate_inputs

    space = DesignSpace.from_yaml(config.oracle.space, rule=config.oracle.rule) if config.oracle.space else None
    return surrogate_inputs(cards, embeddings, space)


def initial_checkpoint(done: Sequence[Trial], config: SearchConfig, t: Trial) -> str | None:
    """The weights trial ``t`` starts from: its source's checkpoint among the ``done`` trials, or its seed's own."""
    if t.source_index is not None:
        rows = [s for s in done if s.card_index == t.source_index]
        return rows[0].checkpoint if rows else None
    if isinstance(config.oracle, TrainConfig):
        return config.oracle.seed_checkpoints.get(ModelCard.from_dict(t.card).key)
    return None


def _within_budget(cards: list[ModelCard], oc: TrainConfig) -> np.ndarray:
    """Indices of the cards inside the run's budget: the others are never trained."""
    keep = np.flatnonzero((oc.limits or Budget()).mask(cards, oc.arch_dims(), oc.latency_model))
    if len(keep) == 0:
        raise FlexiBertError(f"no model of the space {oc.space} fits the budget {oc.limits}")
    return keep


def _fingerprints(cards: list[ModelCard]) -> list[str]:
    from flexibert.space.graphs import fingerprint

    return [fingerprint(c) for c in cards]


@dataclass
class SearchState:
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
                 oracle: Oracle | None = None) -> None:
        self.store, self.config, self.backend, self.problem = store, config, backend, problem
        self.oracle = oracle or problem.oracle
        p = problem
        self.learner = ActiveLearner(
            p.cards, p.X, seeds=p.seeds, candidates=p.candidates, neighbors=p.neighbors, k=config.k,
            acquisition=config.acquisition, beta=config.beta, ci=config.ci, seed=config.seed,
            min_trained=config.min_trained,
            schedule=RelaxationSchedule(start=config.threshold_start, step=config.threshold_step),
            **({"dims": config.oracle.arch_dims(), "layer_map": config.oracle.layer_map}
               if isinstance(config.oracle, TrainConfig) else {}))
        self.progress = SearchState(threshold=config.threshold_start, ci=config.ci)
        self._within = set(problem.within.tolist())
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

    # -- attempts ---------------------------------------------------------------------------------
    def _trial_dir(self, t: Trial) -> Path:
        return self.store.run_dir.resolve() / "trials" / f"{t.id:05d}-{t.card_hash[:8]}"

    def _attempts(self, t: Trial) -> list[tuple[int, Path]]:
        """The trial's attempt directories by launch number, the latest first."""
        found = [(int(m[1]), p) for p in self._trial_dir(t).glob("attempt-*")
                 if (m := re.fullmatch(r"attempt-(\d+)", p.name))]
        return sorted(found, reverse=True)

    def _new_attempt_dir(self, t: Trial) -> Path:
        """Made here, before the launch, so no two launches ever share a directory."""
        attempts = self._attempts(t)
        path = self._trial_dir(t) / f"attempt-{attempts[0][0] + 1 if attempts else 1}"
        path.mkdir(parents=True)
        return path

    def _recover(self, t: Trial) -> TrialOutcome | None:
        """An outcome an attempt of this trial left complete but never reported (its process died)."""
        for _, d in self._attempts(t):
            out = self.oracle.recover(str(d))
            if out is not None:
                return out
        return None

    # -- dispatch ---------------------------------------------------------------------------------
    def _request(self, t: Trial) -> TrialRequest:
        done = self.store.trials("done") if t.source_index is not None else ()
        source = initial_checkpoint(done, self.config, t)
        workdir = self._new_attempt_dir(t)
        return TrialRequest(t.id, t.card, str(workdir), source, self.backend.threads_per_trial)

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
            recovered = self._recover(trial)
            if recovered is not None:  # a resumed or retried trial whose earlier attempt had finished
                self._finish(trial, recovered)
                self._refit()
                continue
            self.backend.submit(trial.id, self.oracle, self._request(trial))

    def _finish(self, t: Trial, out: TrialOutcome) -> None:
        self.store.finish(t.id, out.value, out.metrics, out.checkpoint, out.overlap)
        self.learner.tell(t.card_index, out.value)

    def _record(self, f: Finished) -> bool:
        """Store one finished trial; True when it added a result."""
        t = self.store.trial(f.trial_id)
        error = f.error
        if error is None and not (isinstance(f.result, TrialOutcome) and np.isfinite(f.result.value)):
            error = f"oracle returned no finite score: {f.result!r}"
        if error is not None:
            recovered = self._recover(t)  # the work may have finished before the worker died
            if recovered is not None:
                self._finish(t, recovered)
                return True
            retry = t.attempt < self.config.max_attempts
            self.store.fail(t.id, error, retry)
            if not retry:
                self.learner.tell_failed(t.card_index)
            return False
        self._finish(t, f.result)
        return True

    # -- the loop ---------------------------------------------------------------------------------
    def _answered(self) -> bool:
        """Whether a model that can be the answer (inside the budget) has been measured."""
        return any(i in self._within for i in self.learner.trained)

    def run(self, time_budget: float | None = None, on_progress: Callable[[SearchState], None] | None = None,
            poll_s: float = 1.0) -> SearchState:
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
                # Out of time, the search stops, but not before a model that can be the answer (inside the
                # budget) is measured: on long texts the seed's trial alone can outlast the time budget.
                over = time_budget is not None and elapsed >= time_budget
                if over and self._answered():
                    reason = "time budget"
                    break
                self._dispatch(allow_new=reason is None)
                if self.backend.running() == 0:
                    reason = reason or ("time budget" if over else "exhausted")
                    break
                wait = poll_s if time_budget is None or over else max(0.01, min(poll_s, time_budget - elapsed))
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
               time_budget: float | None = None, on_progress: Callable[[SearchState], None] | None = None,
               oracle: Oracle | None = None, resources: TrialResources = TrialResources()) -> SearchState:
    """Start a run in ``run_dir`` from ``config``, or continue it with ``resume=True``.

    ``budget`` (trials) overrides the stored one, so a finished run can be extended;
    ``time_budget`` (seconds) bounds this invocation. ``oracle`` replaces the config's
    (fault injection, custom measurements). ``resources``: the CPUs and GPUs each trial gets.
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
        be = make_backend(backend, workers, address, resources)
        try:
            return Search(store, config, be, problem, oracle).run(time_budget, on_progress)
        finally:
            be.close()
    finally:
        store.close()
