"""Where trials run: a local process pool or a Ray cluster, behind one small interface.

``submit(trial_id, fn, arg)`` starts ``fn(arg)`` on a free worker; ``wait_any`` blocks
until at least one trial has finished and returns every finished one. A trial whose
function raises, or whose worker dies (killed, out of memory), comes back with an
error text instead of a result; the backend stays usable. The search decides about
retries; the backend knows nothing of trials beyond their ids.

The local pool keeps one spawned process per worker rather than a
``ProcessPoolExecutor``: when a worker dies the executor fails *every* running
trial, while a dead process here is charged to the one trial it was running.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import sys
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Protocol

from flexibert._common import FlexiBertError

BACKENDS: tuple[str, ...] = ("local", "ray")


@dataclass(frozen=True)
class Finished:
    """A trial that ended: its result, or the error text when it failed."""

    trial_id: int
    result: Any = None
    error: str | None = None


class Backend(Protocol):
    workers: int

    def submit(self, trial_id: int, fn: Callable[[Any], Any], arg: Any) -> None: ...

    def wait_any(self, timeout: float | None = None) -> list[Finished]: ...

    def running(self) -> int: ...

    def close(self) -> None: ...


def threads_per_worker(workers: int) -> int:
    """Split this machine's cores between the workers (at least one thread each)."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def _error_text(e: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(e), e)).strip() + "\n" + "".join(
        traceback.format_exception(type(e), e, e.__traceback__))


#: Spinning OpenMP threads stall parallel trials on shared cores 10-20x; passive waiting does not.
WORKER_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def _die_with_parent(parent: int) -> None:
    """A worker must not outlive a search killed with ``kill -9``: it would write into a re-queued trial."""
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)


def _worker_main(conn: Connection, parent: int) -> None:
    """A local worker: run what arrives, send back ``(ok, payload)``, until told to stop."""
    _die_with_parent(parent)
    for key, value in WORKER_ENV.items():  # before the trial imports torch
        os.environ.setdefault(key, value)
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg is None:
            return
        fn, arg = msg
        try:
            reply = (True, fn(arg))
        except BaseException as e:  # noqa: BLE001 - every failure is the trial's, never the worker's
            reply = (False, _error_text(e))
        try:
            conn.send(reply)
        except Exception as e:  # an unpicklable result
            conn.send((False, _error_text(e)))


class _Worker:
    def __init__(self, ctx: Any) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, os.getpid()), daemon=True)
        self.process.start()
        child.close()
        self.trial_id: int | None = None

    def stop(self, force: bool) -> None:
        if force:
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except (BrokenPipeError, OSError):
                pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


class LocalBackend:
    """``workers`` spawned processes on this machine, started on first use and reused."""

    def __init__(self, workers: int = 1) -> None:
        if workers < 1:
            raise FlexiBertError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self._ctx = mp.get_context("spawn")
        self._pool: list[_Worker] = []

    def submit(self, trial_id: int, fn: Callable[[Any], Any], arg: Any) -> None:
        idle = [w for w in self._pool if w.trial_id is None]
        if idle:
            worker = idle[0]
        elif len(self._pool) < self.workers:
            worker = _Worker(self._ctx)
            self._pool.append(worker)
        else:
            raise RuntimeError("all workers are busy: wait_any before submitting more")
        worker.conn.send((fn, arg))
        worker.trial_id = trial_id

    def running(self) -> int:
        return sum(w.trial_id is not None for w in self._pool)

    def wait_any(self, timeout: float | None = None) -> list[Finished]:
        busy = [w for w in self._pool if w.trial_id is not None]
        if not busy:
            return []
        ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout))
        out = []
        for w in busy:
            if w.conn in ready or w.process.sentinel in ready:
                out.append(self._collect(w))
        return out

    def _collect(self, w: _Worker) -> Finished:
        trial_id, w.trial_id = w.trial_id, None
        try:
            if w.conn.poll():
                ok, payload = w.conn.recv()
                return Finished(trial_id, payload, None) if ok else Finished(trial_id, None, payload)
        except (EOFError, OSError):
            pass
        w.process.join(timeout=5)
        code = w.process.exitcode
        self._pool.remove(w)
        w.stop(force=True)
        why = f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"
        return Finished(trial_id, None, f"worker process died ({why}; killed or out of memory?)")

    def close(self) -> None:
        """Stop every worker; running trials are abandoned (the search re-queues them)."""
        for w in self._pool:
            w.stop(force=w.trial_id is not None)
        self._pool.clear()


def _ray_call(fn: Callable[[Any], Any], arg: Any) -> Any:
    return fn(arg)


class RayBackend:
    """The same trials as Ray tasks: on the cluster at ``address``, or a local Ray with ``workers`` CPUs."""

    def __init__(self, workers: int = 1, address: str | None = None) -> None:
        if workers < 1:
            raise FlexiBertError(f"workers must be >= 1, got {workers}")
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        self.workers = workers
        self._owns = not ray.is_initialized()
        if self._owns:
            try:
                if address:
                    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
                else:
                    ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
            except ConnectionError as e:
                raise FlexiBertError(f"cannot reach the Ray cluster at {address}: {e}") from None
        self._task = ray.remote(num_cpus=1, max_retries=0, runtime_env={"env_vars": WORKER_ENV})(_ray_call)
        self._refs: dict[Any, int] = {}

    def submit(self, trial_id: int, fn: Callable[[Any], Any], arg: Any) -> None:
        self._refs[self._task.remote(fn, arg)] = trial_id

    def running(self) -> int:
        return len(self._refs)

    def wait_any(self, timeout: float | None = None) -> list[Finished]:
        import ray

        if not self._refs:
            return []
        ready, _ = ray.wait(list(self._refs), num_returns=1, timeout=timeout)
        if ready:
            rest = [r for r in self._refs if r not in ready]
            if rest:
                ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        out = []
        for ref in ready:
            trial_id = self._refs.pop(ref)
            try:
                out.append(Finished(trial_id, ray.get(ref), None))
            except ray.exceptions.RayTaskError as e:
                cause = e.cause if isinstance(e.cause, BaseException) else e
                out.append(Finished(trial_id, None, _error_text(cause)))
            except ray.exceptions.RayError as e:  # the worker died
                out.append(Finished(trial_id, None, f"ray worker died: {type(e).__name__}: {e}"))
        return out

    def close(self) -> None:
        import ray

        for ref in self._refs:
            ray.cancel(ref, force=True)
        self._refs.clear()
        if self._owns and ray.is_initialized():
            ray.shutdown()


def make_backend(name: str, workers: int, address: str | None = None) -> Backend:
    if name == "local":
        if address:
            raise FlexiBertError("--address applies to the ray backend only")
        return LocalBackend(workers)
    if name == "ray":
        return RayBackend(workers, address)
    raise FlexiBertError(f"unknown backend {name!r}; expected one of {list(BACKENDS)}")
