"""Where trials run: a local process pool or a Ray cluster, behind one small interface.

``submit(trial_id, fn, arg)`` starts ``fn(arg)`` on a free worker; ``wait_any`` blocks
until at least one trial has finished and returns every finished one. A trial whose
function raises, or whose worker dies (killed, out of memory, its Ray node lost), comes
back with an error text instead of a result; the backend stays usable. The search decides
about retries; the backend knows nothing of trials beyond their ids.

Each trial gets its own share of the machine, :class:`TrialResources`: its CPU cores
(``threads_per_trial``, which the trial gives torch) and its GPUs, which are all it can see.

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
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterator, Protocol

from flexibert._common import FlexiBertError

BACKENDS: tuple[str, ...] = ("local", "ray")


@dataclass(frozen=True)
class TrialResources:
    """What one trial may use, on either backend.

    ``cpus_per_trial``: cores, hence torch threads; by default this machine's cores split
    between the workers (one per trial on a Ray cluster, whose nodes the driver cannot see
    in advance). ``gpus_per_trial``: a fraction below one (trials share a GPU) or a whole
    number; a trial sees only the GPUs it was given, none when it asks for none.
    """

    cpus_per_trial: int | None = None
    gpus_per_trial: float = 0

    def __post_init__(self) -> None:
        c, g = self.cpus_per_trial, self.gpus_per_trial
        if c is not None and (isinstance(c, bool) or not isinstance(c, int) or c < 1):
            raise FlexiBertError(f"cpus_per_trial must be a whole number >= 1, got {c!r}")
        if isinstance(g, bool) or not isinstance(g, (int, float)) or not g >= 0 or (g > 1 and g != int(g)):
            raise FlexiBertError(f"gpus_per_trial must be 0, a fraction below 1 or a whole number, got {g!r}")


@dataclass(frozen=True)
class Finished:
    """A trial that ended: its result, or the error text when it failed."""

    trial_id: int
    result: Any = None
    error: str | None = None


class Backend(Protocol):
    workers: int
    threads_per_trial: int  # the torch threads a trial should use: its own share of CPUs

    def submit(self, trial_id: int, fn: Callable[[Any], Any], arg: Any) -> None: ...

    def wait_any(self, timeout: float | None = None) -> list[Finished]: ...

    def running(self) -> int: ...

    def close(self) -> None: ...


def threads_per_worker(workers: int) -> int:
    """Split this machine's cores between the workers (at least one thread each)."""
    return max(1, (os.cpu_count() or 1) // max(1, workers))


def visible_gpus() -> list[str]:
    """The GPUs this process may hand out: ``CUDA_VISIBLE_DEVICES`` when set, else every device torch finds."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is None:
        import torch

        return [str(i) for i in range(torch.cuda.device_count())]
    ids = []
    for d in (d.strip() for d in env.split(",")):
        if not d or d.startswith("-"):  # CUDA ignores everything from the first invalid entry on
            break
        ids.append(d)
    return ids


def gpu_assignment(workers: int, gpus_per_trial: float, visible: list[str]) -> list[str]:
    """``CUDA_VISIBLE_DEVICES`` for each local worker slot: the visible GPUs dealt round-robin.

    A whole number of GPUs per trial gives every slot its own; a fraction lets ``1 / fraction``
    slots share one. Asking for more than is visible is an error rather than silent sharing.
    """
    if gpus_per_trial == 0:
        return [""] * workers
    need = workers * gpus_per_trial
    if need > len(visible) + 1e-9:
        raise FlexiBertError(f"{workers} workers x {gpus_per_trial:g} GPUs per trial need {need:g} GPUs, "
                             f"but {len(visible)} are visible")
    per = max(1, int(gpus_per_trial))
    return [",".join(visible[(slot * per + j) % len(visible)] for j in range(per)) for slot in range(workers)]


def _error_text(e: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(e), e)).strip() + "\n" + "".join(
        traceback.format_exception(type(e), e, e.__traceback__))


#: Spinning OpenMP threads stall parallel trials on shared cores 10-20x; passive waiting does not.
WORKER_ENV = {"OMP_WAIT_POLICY": "PASSIVE"}


def _worker_env(threads: int, cuda_devices: str | None) -> dict[str, str]:
    """What a trial's process must see before it imports torch: its thread count and only its GPUs
    (``cuda_devices`` None: leave ``CUDA_VISIBLE_DEVICES`` to Ray, which sets it per GPU task)."""
    env = {k: os.environ.get(k, v) for k, v in WORKER_ENV.items()}  # the user's own setting wins
    env["OMP_NUM_THREADS"] = str(threads)
    if cuda_devices is not None:
        env["CUDA_VISIBLE_DEVICES"] = cuda_devices
    return env


@contextmanager
def _environ(env: dict[str, str]) -> Iterator[None]:
    """Set ``env`` in this process for the duration: a spawned child inherits it at exec."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


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
    def __init__(self, ctx: Any, slot: int, env: dict[str, str]) -> None:
        self.slot = slot
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker_main, args=(child, os.getpid()), daemon=True)
        # Set at exec, not in _worker_main: unpickling the target imports flexibert, hence torch.
        with _environ(env):
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
    """``workers`` spawned processes on this machine, started on first use and reused.

    Worker slot ``i`` always gets the same GPUs, so a worker that replaces a dead one
    takes over its GPUs rather than crowding another's.
    """

    def __init__(self, workers: int = 1, resources: TrialResources = TrialResources()) -> None:
        if workers < 1:
            raise FlexiBertError(f"workers must be >= 1, got {workers}")
        self.workers = workers
        self.threads_per_trial = resources.cpus_per_trial or threads_per_worker(workers)
        gpus = resources.gpus_per_trial
        devices = gpu_assignment(workers, gpus, visible_gpus() if gpus else [])
        self._envs = [_worker_env(self.threads_per_trial, d) for d in devices]
        self._ctx = mp.get_context("spawn")
        self._pool: list[_Worker] = []

    def submit(self, trial_id: int, fn: Callable[[Any], Any], arg: Any) -> None:
        idle = [w for w in self._pool if w.trial_id is None]
        if idle:
            worker = idle[0]
        elif len(self._pool) < self.workers:
            slot = min(set(range(self.workers)) - {w.slot for w in self._pool})
            worker = _Worker(self._ctx, slot, self._envs[slot])
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
    """The same trials as Ray tasks: on the cluster at ``address``, or a local Ray sized for ``workers`` trials.

    Each task asks Ray for the trial's CPUs and GPUs; Ray sets ``CUDA_VISIBLE_DEVICES`` to
    the GPUs it grants a task (ray/_private/accelerators/nvidia_gpu.py) but leaves it alone
    for a task granted none (ray-project/ray#54868), so a CPU trial is given an empty one here.
    A task lost with its node (or its worker) comes back as that one trial's error; Ray
    itself never retries, the search does.
    """

    def __init__(self, workers: int = 1, address: str | None = None,
                 resources: TrialResources = TrialResources()) -> None:
        if workers < 1:
            raise FlexiBertError(f"workers must be >= 1, got {workers}")
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        import ray

        self.workers = workers
        self._owns = not ray.is_initialized()
        local = self._owns and not address
        self.threads_per_trial = resources.cpus_per_trial or (threads_per_worker(workers) if local else 1)
        gpus = resources.gpus_per_trial
        if self._owns:
            try:
                if address:
                    ray.init(address=address, logging_level="ERROR", log_to_driver=False)
                else:
                    ray.init(num_cpus=workers * self.threads_per_trial, include_dashboard=False,
                             logging_level="ERROR", log_to_driver=False)
            except ConnectionError as e:
                raise FlexiBertError(f"cannot reach the Ray cluster at {address}: {e}") from None
        self._refs: dict[Any, int] = {}
        self._check_fits(ray.nodes(), self.threads_per_trial, gpus)
        env = _worker_env(self.threads_per_trial, None if gpus else "")
        # num_gpus > 0 also makes Ray start a fresh worker per task (max_calls=1): a new CUDA context each time.
        self._task = ray.remote(num_cpus=self.threads_per_trial, num_gpus=gpus, max_retries=0,
                                runtime_env={"env_vars": env})(_ray_call)

    def _check_fits(self, nodes: list[dict[str, Any]], cpus: int, gpus: float) -> None:
        """A trial no node can hold would wait forever: refuse it now."""
        if not any(n["Alive"] and n["Resources"].get("CPU", 0) >= cpus and n["Resources"].get("GPU", 0) >= gpus
                   for n in nodes):
            self.close()
            raise FlexiBertError(f"no node of the Ray cluster has {cpus} CPU(s) and {gpus:g} GPU(s) for one trial")

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
            except ray.exceptions.RayError as e:  # its worker or its whole node died
                out.append(Finished(trial_id, None, f"ray task lost: {type(e).__name__}: {e}"))
        return out

    def close(self) -> None:
        import ray

        for ref in self._refs:
            ray.cancel(ref, force=True)
        self._refs.clear()
        if self._owns and ray.is_initialized():
            ray.shutdown()


def make_backend(name: str, workers: int, address: str | None = None,
                 resources: TrialResources = TrialResources()) -> Backend:
    if name == "local":
        if address:
            raise FlexiBertError("--address applies to the ray backend only")
        return LocalBackend(workers, resources)
    if name == "ray":
        return RayBackend(workers, address, resources)
    raise FlexiBertError(f"unknown backend {name!r}; expected one of {list(BACKENDS)}")
