"""Trial resources on the local backend: real spawned workers, each checked from its own environment.

There is no GPU here; the parent's ``CUDA_VISIBLE_DEVICES`` stands in for the visible devices,
which is exactly what the backend reads, and each child reports the environment it was
exec'd with (``/proc/self/environ``), i.e. what it had before it imported torch.
"""

from __future__ import annotations

import os
import signal
import sys

import pytest

from flexibert._common import FlexiBertError
from flexibert.search.backends import (
    LocalBackend,
    TrialResources,
    gpu_assignment,
    make_backend,
)

KEYS = ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/environ")


def exec_env(_: object) -> tuple[int, dict[str, str]]:
    """This process's pid and the variables it was started with."""
    with open("/proc/self/environ", "rb") as f:
        env = dict(e.split("=", 1) for e in f.read().decode().split("\0") if "=" in e)
    return os.getpid(), {k: env[k] for k in KEYS if k in env}


def die(_: object) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def run_all(backend: LocalBackend, fn, n: int) -> list:
    """Start ``n`` trials at once, so that each lands in its own worker, and collect them."""
    for i in range(n):
        backend.submit(i, fn, None)
    out = []
    while backend.running():
        out += backend.wait_any(60)
    return sorted(out, key=lambda f: f.trial_id)


def test_resources_are_validated():
    for bad in ({"cpus_per_trial": 0}, {"cpus_per_trial": 1.5}, {"gpus_per_trial": -1}, {"gpus_per_trial": 1.5},
                {"gpus_per_trial": float("nan")}):
        with pytest.raises(FlexiBertError, match="per_trial"):
            TrialResources(**bad)
    TrialResources(cpus_per_trial=3, gpus_per_trial=0.25)
    TrialResources(gpus_per_trial=2)


def test_gpus_are_dealt_round_robin():
    assert gpu_assignment(3, 0, ["0", "1"]) == ["", "", ""]
    assert gpu_assignment(3, 1, ["4", "5", "6"]) == ["4", "5", "6"]
    assert gpu_assignment(2, 2, ["0", "1", "2", "3"]) == ["0,1", "2,3"]
    assert gpu_assignment(4, 0.5, ["0", "1"]) == ["0", "1", "0", "1"]  # two trials per GPU
    with pytest.raises(FlexiBertError, match="3 workers x 1 GPUs per trial need 3 GPUs, but 2 are visible"):
        gpu_assignment(3, 1, ["0", "1"])
    with pytest.raises(FlexiBertError, match="need 2 GPUs, but 1 are visible"):
        gpu_assignment(4, 0.5, ["0"])


def test_each_worker_sees_only_its_gpus_and_its_threads(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5,7")
    monkeypatch.setenv("OMP_NUM_THREADS", "13")
    backend = LocalBackend(2, TrialResources(cpus_per_trial=2, gpus_per_trial=1))
    try:
        assert backend.threads_per_trial == 2
        first = {pid: env for pid, env in (f.result for f in run_all(backend, exec_env, 2))}
        assert len(first) == 2
        assert sorted(env["CUDA_VISIBLE_DEVICES"] for env in first.values()) == ["3", "5"]
        assert all(env["OMP_NUM_THREADS"] == "2" for env in first.values())
        # The parent's own environment is untouched.
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "3,5,7" and os.environ["OMP_NUM_THREADS"] == "13"

        # A worker that dies is replaced by one with its GPU, not with the next one in line.
        backend.submit(99, die, None)
        lost = backend.wait_any(60)
        assert [f.trial_id for f in lost] == [99] and "killed by signal 9" in lost[0].error
        again = {pid: env for pid, env in (f.result for f in run_all(backend, exec_env, 2))}
        assert sorted(env["CUDA_VISIBLE_DEVICES"] for env in again.values()) == ["3", "5"]
        assert len(set(again) - set(first)) == 1
    finally:
        backend.close()


def test_trials_that_ask_for_no_gpu_see_none_and_get_the_cores(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    backend = make_backend("local", 1)
    try:
        assert backend.threads_per_trial == (os.cpu_count() or 1)
        [f] = run_all(backend, exec_env, 1)
        assert f.result[1] == {"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": str(backend.threads_per_trial)}
    finally:
        backend.close()


def test_more_gpus_than_visible_is_refused(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1,-1,2")  # CUDA stops at the first invalid entry
    with pytest.raises(FlexiBertError, match="need 3 GPUs, but 2 are visible"):
        LocalBackend(3, TrialResources(gpus_per_trial=1))
