"""A sweep on a real two-node Ray cluster on this machine: a head and a second node started with `ray start`
as separate processes (one CPU each). Cells run on both nodes and give the local engine's results; killing
the second node mid-sweep fails only the cells it was running, and the rerun completes the sweep; a node
with another code version is reported, not mixed in."""

import copy
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from tests.conftest import TINY_MODELS

ray = pytest.importorskip("ray")
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("ray")]  # the tests that start Ray run one after another


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_start(*args, env) -> subprocess.Popen:
    exe = shutil.which("ray", path=str(Path(sys.executable).parent)) or "ray"
    return subprocess.Popen([exe, "start", "--num-cpus=1", "--disable-usage-stats", "--block", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def _session(sid: int) -> list[tuple[int, bytes]]:
    """(pid, command line) of every process of session ``sid``: a node started with `ray start` in a new
    session, its raylet and its workers (which Ray puts in process groups of their own)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                if os.getsid(int(proc.name)) == sid:
                    found.append((int(proc.name), (proc / "cmdline").read_bytes()))
            except OSError:
                continue
    return found


def _stop(proc: subprocess.Popen) -> None:
    for pid, _ in _session(proc.pid):  # the node: `ray start`, raylet, object store, workers
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


def _running_a_cell(sid: int) -> bool:
    """Whether a worker of the node started as session ``sid`` is running a cell (Ray names a busy worker
    after its task, ``ray::_ray_cell``)."""
    return any(cmd.startswith(b"ray::_ray_cell") for _, cmd in _session(sid))


@pytest.fixture
def cluster(monkeypatch):
    # loopback only: the nodes opt out of Ray's token authentication, as this process's Ray (imported
    # earlier in the session) reads its auth mode once; across machines the guide's token set-up applies
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    temp = tempfile.mkdtemp(prefix="oddpix-ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    port = _free_port()
    head = _ray_start("--head", f"--port={port}", "--include-dashboard=false", f"--temp-dir={temp}", env=env)
    address = f"127.0.0.1:{port}"
    second = None
    try:
        for _ in range(600):
            assert head.poll() is None, "the head node did not start"
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.1)
        second = _ray_start(f"--address={address}", env=env)
        ray.init(address=address, log_to_driver=False, configure_logging=False, include_dashboard=False)
        for _ in range(600):
            assert second.poll() is None, "the second node did not start"
            if sum(n["Alive"] for n in ray.nodes()) == 2:
                break
            time.sleep(0.1)
        assert sum(n["Alive"] for n in ray.nodes()) == 2, "the second node did not join"
        head_node = ray.get_runtime_context().get_node_id()  # the driver is attached to the head
        yield {"address": address, "head": head_node, "second": second}
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if second is not None:
            _stop(second)
        _stop(head)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.fixture
def base(mirror):
    models = copy.deepcopy(TINY_MODELS)
    return {"device": "cpu", "models": models, "data": {"mirror": str(mirror), "checksums": "mirror", "download": False}}


def test_a_sweep_runs_on_both_nodes_survives_losing_one_and_refuses_mixed_code(tmp_path, base, cluster, monkeypatch):
    from oddpix import sweep

    cells = sweep.cells_of("fashion_mnist", ["knn"], [0, 1], [42, 43])
    reports = tmp_path / "cluster"
    first = sweep.run_sweep(base, cells, reports, "ray", address=cluster["address"], progress=False, log=lambda m: None)
    assert not first.failed
    nodes = {first.records[c]["node_id"] for c in cells}
    assert len(nodes) == 2 and cluster["head"] in nodes  # both machines of the cluster ran cells
    local = sweep.run_sweep(base, cells, tmp_path / "local", "local", progress=False, log=lambda m: None)
    for c in cells:  # the same cell gives the same result wherever it ran
        assert first.records[c]["metrics"]["auroc"] == pytest.approx(local.records[c]["metrics"]["auroc"], abs=1e-12)

    # the second node dies mid-sweep: only the cells it was running fail; the rerun completes the sweep
    more = sweep.cells_of("fashion_mnist", ["cae"], [2, 3, 4], [42, 43])
    second_node = next(n for n in nodes if n != cluster["head"])
    box = {}
    run = threading.Thread(target=lambda: box.update(result=sweep.run_sweep(
        base, more, reports, "ray", address=cluster["address"], progress=False, log=lambda m: None)))
    run.start()
    deadline = time.time() + 300
    while time.time() < deadline and not _running_a_cell(cluster["second"].pid):
        time.sleep(0.02)
    _stop(cluster["second"])  # while one of its workers runs a cell
    run.join(timeout=600)
    result = box["result"]
    assert result.failed, "the second node was stopped while running a cell: that cell fails"
    assert all(result.records[c].get("node_id") != second_node for c in more if c not in result.failed)
    for c in result.failed:
        assert result.records[c]["error"].startswith("ray: "), result.records[c]["error"]
    again = sweep.run_sweep(base, more, reports, "ray", address=cluster["address"], progress=False, log=lambda m: None)
    assert not again.failed and again.ran == len(result.failed)  # only the failed cells ran again
    assert again.reused_cells == frozenset(c for c in more if c not in result.failed)

    # a node whose code differs from this machine's: its results are refused, not mixed into the table
    import oddpix.provenance

    monkeypatch.setattr(oddpix.provenance, "code_version", lambda: "another-version")
    odd = sweep.run_sweep(base, sweep.cells_of("fashion_mnist", ["knn"], [5], [42]), tmp_path / "odd", "ray",
                          address=cluster["address"], progress=False, log=lambda m: None)
    (record,) = odd.records.values()
    assert record["status"] == "failed" and "runs oddpix code version" in record["error"]
    assert "install the same code on every node" in record["error"] and not record["metrics"]
