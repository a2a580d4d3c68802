"""A real two-node Ray cluster on localhost (``ray start``): trial resources, and a search that loses a node.

Each node is one ``ray start --block`` in its own session with its own ``--temp-dir``, so
its processes are that command's descendants: the worker node's raylet is found and
killed by pid, and teardown stops only these two nodes (``ray stop`` would stop every
Ray on the machine).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from flexibert._common import FlexiBertError
from flexibert.search.backends import RayBackend, TrialResources
from flexibert.search.config import ReplayConfig, SearchConfig
from flexibert.search.loop import run_search
from flexibert.search.store import RunStore
from flexibert.space.design_space import ModelCard

from .conftest import STUDY_JSON

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds Ray's processes in /proc")

RAY = str(Path(sys.executable).with_name("ray"))
START_S = 120  # a node on a loaded 2-core machine takes 10-20 s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _descendants(pid: int) -> list[int]:
    parent = {}
    for d in os.listdir("/proc"):
        try:
            parent[int(d)] = int(Path(f"/proc/{d}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (ValueError, OSError, IndexError):
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parent.items() if pp == p]
        out += kids
        todo += kids
    return out


def _read(path: str) -> str:
    try:
        return Path(path).read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:  # the process has just gone
        return ""


def _cmdline(pid: int) -> str:
    return _read(f"/proc/{pid}/cmdline")


@dataclass
class Node:
    process: subprocess.Popen
    temp_dir: str

    def pids(self, title: str) -> list[int]:
        """This node's processes whose command line (Ray retitles its workers) starts with ``title``."""
        return [p for p in _descendants(self.process.pid) if _cmdline(p).startswith(title)]

    def raylet(self) -> int:
        [pid] = [p for p in _descendants(self.process.pid) if _read(f"/proc/{p}/comm") == "raylet"]
        return pid

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # ray start --block stops and reaps its own processes on SIGTERM
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # whatever is left of this node only
        except ProcessLookupError:
            pass
        self.process.wait()
        shutil.rmtree(self.temp_dir, ignore_errors=True)


@dataclass
class Cluster:
    address: str
    head: Node
    worker: Node


def _start_node(args: list[str], log: Path) -> Node:
    temp_dir = tempfile.mkdtemp(prefix="fbray-")  # short: Ray's socket paths live under it
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    with open(log, "w") as out:
        process = subprocess.Popen(
            [RAY, "start", *args, "--temp-dir", temp_dir, "--num-cpus", "2", "--block", "--disable-usage-stats",
             "--object-store-memory", str(80 * 2**20)],
            stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    return Node(process, temp_dir)


def _wait(what: str, ready, nodes: list[Node], logs: list[Path]) -> None:
    deadline = time.monotonic() + START_S
    while not ready():
        for node, log in zip(nodes, logs):
            if node.process.poll() is not None:
                raise RuntimeError(f"a ray node exited while waiting for {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"no {what} after {START_S} s")
        time.sleep(0.5)


def _gcs_up(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    logs = tmp_path_factory.mktemp("ray-logs")
    port = _free_port()
    address = f"127.0.0.1:{port}"
    nodes: list[Node] = []
    try:
        nodes.append(_start_node(["--head", "--port", str(port), "--include-dashboard", "false"], logs / "head.log"))
        _wait("head node", lambda: _gcs_up(port), nodes, [logs / "head.log"])
        nodes.append(_start_node(["--address", address], logs / "worker.log"))
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
        try:
            _wait("second node", lambda: sum(n["Alive"] for n in ray.nodes()) == 2, nodes,
                  [logs / "head.log", logs / "worker.log"])
        finally:
            ray.shutdown()
        yield Cluster(address, *nodes)
    finally:
        for node in reversed(nodes):
            node.stop()


def task_view(_: object) -> dict:
    """What a trial's Ray task was given and sees; it lasts a moment, as a trial does, so that two overlap."""
    time.sleep(2)
    ctx = ray.get_runtime_context()
    return {"node": ctx.get_node_id(), "cpus": ctx.get_assigned_resources().get("CPU"),
            **{k: os.environ.get(k) for k in ("CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS")}}


def test_trial_resources_on_the_cluster(cluster):
    with pytest.raises(FlexiBertError, match="no node of the Ray cluster has 1 CPU.s. and 1 GPU.s."):
        RayBackend(1, cluster.address, TrialResources(gpus_per_trial=1))
    with pytest.raises(FlexiBertError, match="has 3 CPU"):
        RayBackend(1, cluster.address, TrialResources(cpus_per_trial=3))
    assert not ray.is_initialized()

    backend = RayBackend(2, cluster.address, TrialResources(cpus_per_trial=2))
    try:
        assert backend.threads_per_trial == 2
        for i in range(2):
            backend.submit(i, task_view, None)
        views = []
        while backend.running():
            views += backend.wait_any(60)
    finally:
        backend.close()
    assert [f.error for f in views] == [None, None]
    for f in views:
        assert f.result["cpus"] == 2 and f.result["OMP_NUM_THREADS"] == "2"
        assert f.result["CUDA_VISIBLE_DEVICES"] == ""  # a trial given no GPU sees none
    # Two CPUs per trial, two per node: the trials ran side by side on both nodes.
    assert len({f.result["node"] for f in views}) == 2


def test_search_loses_a_node_and_every_trial_ends_done_once(cluster, tmp_path, study):
    budget = 30
    config = SearchConfig("sst2", ReplayConfig(str(STUDY_JSON), sim_seconds=1.0), budget=budget, seed=3)
    killed: dict[str, int] = {}

    def kill_worker_node(progress) -> None:
        """Once the search is under way, SIGKILL the second node's raylet while it runs trials."""
        if killed or progress.done < 8:
            return
        busy = cluster.worker.pids("ray::_ray_call")
        if busy:
            os.kill(cluster.worker.raylet(), signal.SIGKILL)
            killed["busy"] = len(busy)

    t0 = time.monotonic()
    final = run_search(tmp_path / "run", config, workers=4, backend="ray", address=cluster.address,
                       time_budget=240, on_progress=kill_worker_node)
    wall = time.monotonic() - t0
    assert killed, "the worker node never ran a trial while the search was under way"
    assert final.reason == "budget", f"stopped by {final.reason} after {wall:.0f} s"
    assert final.done == budget and final.failed == 0

    measured = {ModelCard.from_dict(d).key: a["SST-2"] for d, a in zip(study["model_dicts"], study["accuracies"])}
    with RunStore(tmp_path / "run") as store:
        trials = store.trials()
    assert len(trials) == budget and all(t.status == "done" for t in trials)  # none lost
    assert len({t.card_index for t in trials}) == budget  # no model measured twice
    assert all(t.value == measured[ModelCard.from_dict(t.card).key] for t in trials)
    # What ran on the lost node ran again (a second attempt), and only once more.
    retried = [t for t in trials if t.attempt > 1]
    assert 1 <= len(retried) and all(t.attempt == 2 for t in retried)
    assert cluster.worker.process.poll() is not None  # ray start --block noticed its raylet die and stopped
