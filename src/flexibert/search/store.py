"""The run database: one SQLite file (WAL) per run directory, plus the lock that guards it.

It holds the run's config, every trial and every surrogate snapshot. Each change is
one transaction, so a run killed at any instant (``kill -9``) leaves a consistent
file: ``--resume`` re-queues the trials that were ``running`` and loses nothing that
had finished. A trial row is unique per model, so no model is ever trained twice.
The lock is an exclusive ``flock`` on ``run.lock`` held for the store's lifetime; the
kernel drops it when the process dies, so a crash never leaves a stale lock. Readers
(report, export) open the file read-only instead: no lock, no schema script, no writes,
so they work while a search is writing (WAL lets them read its last committed state).
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flexibert._common import FlexiBertError

DB_NAME = "search.db"
LOCK_NAME = "run.lock"
STATUSES = ("queued", "running", "done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    id INTEGER PRIMARY KEY,
    card_index INTEGER NOT NULL UNIQUE,
    card_hash TEXT NOT NULL,
    card TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'failed')),
    attempt INTEGER NOT NULL DEFAULT 0,
    value REAL,
    metrics TEXT,
    source_index INTEGER,
    source_hash TEXT,
    overlap REAL,
    threshold REAL,
    checkpoint TEXT,
    error TEXT,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    done_seq INTEGER UNIQUE
);
CREATE TABLE IF NOT EXISTS snapshots (
    id INTEGER PRIMARY KEY,
    created_at REAL NOT NULL,
    n_trained INTEGER NOT NULL,
    best_hash TEXT,
    best_value REAL,
    max_sigma REAL,
    spearman REAL,
    kendall REAL,
    mae REAL,
    folds INTEGER,
    threshold REAL,
    optimized INTEGER,
    n_optimized INTEGER,
    theta TEXT,
    kernel TEXT
);
"""


@dataclass(frozen=True)
class Trial:
    """One row of ``trials``."""

    id: int
    card_index: int
    card_hash: str
    card: dict[str, Any]
    status: str
    attempt: int
    value: float | None
    metrics: dict[str, float] | None
    source_index: int | None
    source_hash: str | None
    overlap: float | None
    threshold: float | None
    checkpoint: str | None
    error: str | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    done_seq: int | None


def _trial(row: sqlite3.Row) -> Trial:
    d = dict(row)
    d["card"] = json.loads(d["card"])
    d["metrics"] = json.loads(d["metrics"]) if d["metrics"] else None
    return Trial(**d)


def search_dir(path: str | Path) -> Path:
    """Where a search's database is: ``path`` itself (``flexibert search``) or ``path/search`` (``flexibert run``)."""
    path = Path(path)
    for d in (path, path / "search"):
        if (d / DB_NAME).is_file():
            return d
    raise FlexiBertError(f"{path} is not a search or run directory (no {DB_NAME} in it or in {path / 'search'})")


class RunStore:
    """The database of one run. ``create=True`` starts a new run in an empty or absent directory;
    ``read_only=True`` reads an existing one, even one a live search is writing."""

    def __init__(self, run_dir: str | Path, create: bool = False, *, read_only: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.read_only = read_only
        self.db: sqlite3.Connection | None = None
        self._lock = None
        db = self.run_dir / DB_NAME
        if read_only:
            if create:
                raise ValueError("a read-only store cannot create a run")
            self._open_read_only(db)
            return
        if create:
            if db.exists():
                raise FlexiBertError(f"run directory {self.run_dir} already holds a run; use --resume {self.run_dir}")
            self.run_dir.mkdir(parents=True, exist_ok=True)
        elif not db.exists():
            raise FlexiBertError(f"no run to resume in {self.run_dir} ({DB_NAME} missing)")
        self._lock = open(self.run_dir / LOCK_NAME, "a+")
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise FlexiBertError(f"run {self.run_dir} is locked: another search is writing to it") from None
        self._lock.seek(0)
        self._lock.truncate()
        self._lock.write(f"{os.getpid()}\n")
        self._lock.flush()
        try:
            self.db = sqlite3.connect(db, isolation_level=None, timeout=30)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
            self.db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as e:
            self.close()
            raise FlexiBertError(f"run database {db} is unreadable: {e}") from None

    def _open_read_only(self, db: Path) -> None:
        """SQLite's ``mode=ro``: the file is never written (SQLite may add its ``-wal``/``-shm`` companions)."""
        if not db.is_file():
            raise FlexiBertError(f"no search database in {self.run_dir} ({DB_NAME} missing)")
        try:
            self.db = sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True, isolation_level=None, timeout=30)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA query_only=ON")
            tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as e:
            self.close()
            raise FlexiBertError(f"run database {db} is unreadable: {e}") from None
        if not {"meta", "trials", "snapshots"} <= tables:
            self.close()
            raise FlexiBertError(f"run database {db} holds no run yet (its tables are missing)")

    # -- lifecycle ----------------------------------------------------------------------------------
    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None
        if self._lock is not None and not self._lock.closed:
            self._lock.close()  # closing the descriptor releases the flock

    def __enter__(self) -> "RunStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _tx(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        if self.read_only:
            raise FlexiBertError(f"run {self.run_dir} is open read-only")
        with self.db:
            return self.db.execute(sql, args)

    # -- config -------------------------------------------------------------------------------------
    def set_meta(self, key: str, value: Any) -> None:
        self._tx("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                 (key, json.dumps(value)))

    def meta(self, key: str, default: Any = None) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row["value"]) if row else default

    # -- trials -------------------------------------------------------------------------------------
    def add_trial(self, card_index: int, card: dict[str, Any], card_hash: str, *, source_index: int | None = None,
                  source_hash: str | None = None, overlap: float | None = None, threshold: float | None = None) -> int:
        try:
            cur = self._tx(
                "INSERT INTO trials(card_index, card_hash, card, status, source_index, source_hash, overlap, threshold,"
                " created_at) VALUES (?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
                (card_index, card_hash, json.dumps(card, sort_keys=True), source_index, source_hash, overlap,
                 threshold, time.time()))
        except sqlite3.IntegrityError:
            raise FlexiBertError(f"model {card_hash} already has a trial in this run") from None
        return int(cur.lastrowid)

    def start(self, trial_id: int) -> Trial:
        self._tx("UPDATE trials SET status = 'running', attempt = attempt + 1, started_at = ? WHERE id = ?",
                 (time.time(), trial_id))
        return self.trial(trial_id)

    def finish(self, trial_id: int, value: float, metrics: dict[str, float], checkpoint: str | None,
               overlap: float | None = None) -> Trial:
        """Mark done; ``done_seq`` orders results, so a resumed run replays them in the same order."""
        self._tx(
            "UPDATE trials SET status = 'done', value = ?, metrics = ?, checkpoint = ?, overlap = COALESCE(?, overlap),"
            " error = NULL, finished_at = ?, done_seq = (SELECT COALESCE(MAX(done_seq), 0) + 1 FROM trials)"
            " WHERE id = ?",
            (value, json.dumps(metrics, sort_keys=True), checkpoint, overlap, time.time(), trial_id))
        return self.trial(trial_id)

    def fail(self, trial_id: int, error: str, retry: bool) -> Trial:
        """Record an error: back to ``queued`` for one more attempt, or ``failed`` for good."""
        status = "queued" if retry else "failed"
        self._tx("UPDATE trials SET status = ?, error = ?, finished_at = ? WHERE id = ?",
                 (status, error, None if retry else time.time(), trial_id))
        return self.trial(trial_id)

    def requeue_running(self) -> int:
        """After a crash: trials left ``running`` go back to the queue; the crash costs them no attempt."""
        cur = self._tx("UPDATE trials SET status = 'queued', attempt = MAX(attempt - 1, 0), started_at = NULL"
                       " WHERE status = 'running'")
        return cur.rowcount

    def trial(self, trial_id: int) -> Trial:
        row = self.db.execute("SELECT * FROM trials WHERE id = ?", (trial_id,)).fetchone()
        if row is None:
            raise FlexiBertError(f"no trial {trial_id} in run {self.run_dir}")
        return _trial(row)

    def trials(self, status: str | None = None) -> list[Trial]:
        """Trials by id; done trials by the order they finished in."""
        if status is not None and status not in STATUSES:
            raise FlexiBertError(f"unknown trial status {status!r}; expected one of {list(STATUSES)}")
        if status == "done":
            rows = self.db.execute("SELECT * FROM trials WHERE status = 'done' ORDER BY done_seq")
        elif status:
            rows = self.db.execute("SELECT * FROM trials WHERE status = ? ORDER BY id", (status,))
        else:
            rows = self.db.execute("SELECT * FROM trials ORDER BY id")
        return [_trial(r) for r in rows]

    def counts(self) -> dict[str, int]:
        rows = self.db.execute("SELECT status, COUNT(*) AS n FROM trials GROUP BY status")
        out = dict.fromkeys(STATUSES, 0)
        out.update({r["status"]: r["n"] for r in rows})
        return out

    # -- snapshots ----------------------------------------------------------------------------------
    def add_snapshot(self, snapshot: dict[str, Any], best_hash: str | None) -> None:
        held = snapshot.get("held_out") or {}
        self._tx(
            "INSERT INTO snapshots(created_at, n_trained, best_hash, best_value, max_sigma, spearman, kendall, mae, folds,"
            " threshold, optimized, n_optimized, theta, kernel) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (time.time(), snapshot["n_trained"], best_hash, snapshot["best_value"], snapshot["max_sigma"],
             held.get("spearman"), held.get("kendall"), held.get("mae"), held.get("folds"), snapshot["threshold"],
             int(snapshot["optimized"]), snapshot["n_optimized"], json.dumps(snapshot["theta"]), snapshot["kernel"]))

    def snapshots(self) -> list[dict[str, Any]]:
        return [_snapshot(r) for r in self.db.execute("SELECT * FROM snapshots ORDER BY id")]

    def latest_snapshot(self) -> dict[str, Any] | None:
        row = self.db.execute("SELECT * FROM snapshots ORDER BY id DESC LIMIT 1").fetchone()
        return _snapshot(row) if row else None


def _snapshot(row: sqlite3.Row) -> dict[str, Any]:
    d = dict(row)
    d["theta"] = json.loads(d["theta"]) if d["theta"] else None
    return d
