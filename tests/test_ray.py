"""Evaluation on a real two-node Ray cluster (a head and a worker node, separate raylet
processes, each with its own ``rlm_sandbox_slots``): tasks land on both nodes and score as
the local runner does, a worker killed mid-task has its task retried, and nothing is left
behind (no container, no Ray process). Real Docker sandboxes, the scripted oracle through
litellm."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="the ray extra is not installed (scripts/setup.sh installs it)")
from ray.cluster_utils import Cluster  # noqa: E402 - after the path/importorskip above

from rlm_sandbox.eval import SuiteConfig, run_suite  # noqa: E402 - after the path/importorskip above
from rlm_sandbox.eval.ray_backend import SLOTS, RayBackend  # noqa: E402 - after the path/importorskip above
from rlm_sandbox.eval.ray_limiter import RateLimit  # noqa: E402 - after the path/importorskip above
from rlm_sandbox.eval.results import read_results  # noqa: E402 - after the path/importorskip above
from rlm_sandbox.events import read_events  # noqa: E402 - after the path/importorskip above
from tests.conftest import TEST_SESSION, TEST_SESSION_LABEL  # noqa: E402 - after the path/importorskip above

pytestmark = pytest.mark.docker
LABELS = {TEST_SESSION_LABEL: TEST_SESSION}
SMALL = {"tokens": "1024"}
RAY_PROCESSES = ("raylet", "gcs_server", "default_worker", "ray::", "plasma_store", "log_monitor")


def ray_pids() -> set[int]:
    """Processes of a Ray cluster on this machine (by their command line)."""
    pids = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if any(name in cmdline for name in RAY_PROCESSES):
                pids.add(int(entry.name))
    return pids


def our_containers(docker_client) -> list:
    return docker_client.api.containers(all=True, filters={"label": f"{TEST_SESSION_LABEL}={TEST_SESSION}"})


@pytest.fixture(scope="module")
def cluster(sandbox_image):
    """Two Ray nodes on this machine, each its own raylet with 2 sandbox slots; gone afterwards."""
    before = ray_pids()
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {SLOTS: 2},
                                                           "include_dashboard": False})
    nodes.add_node(num_cpus=1, resources={SLOTS: 2})
    nodes.wait_for_nodes()
    yield nodes
    nodes.shutdown()
    deadline = time.monotonic() + 30
    while (left := ray_pids() - before) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not left, f"Ray processes left behind: {sorted(left)}"


def node_ids(cluster) -> set[str]:
    return {node.node_id for node in cluster.list_all_nodes()}


def suite(tmp_path: Path, name: str, backend=None, **kwargs):
    return run_suite(["sniah"], SuiteConfig(model="scripted/oracle", out=tmp_path / name, params=SMALL,
                                            labels=LABELS, progress=False, **kwargs), backend=backend)


def test_forty_tasks_land_on_both_nodes_and_score_as_the_local_runner(tmp_path, cluster, docker_client):
    backend = RayBackend(address=cluster.address)
    summary = suite(tmp_path, "ray", backend, n=40)
    assert backend.capacity == 4  # 2 slots on each node
    assert (summary.tasks, summary.errors, summary.mean_score) == (40, 0, 1.0)
    on_ray = read_results(tmp_path / "ray")
    assert {result.node for result in on_ray.values()} == node_ids(cluster)
    assert not any(result.retried for result in on_ray.values())
    for result in on_ray.values():  # each trace came back from its node, whole
        trace = read_events(tmp_path / "ray" / result.trajectory)
        assert not trace.partial and trace.events[0].event == "run_start"
    local = read_results(tmp_path / "local") if suite(tmp_path, "local", n=40, concurrency=4) else {}
    assert {key: (r.score, r.answer, r.status) for key, r in on_ray.items()} == \
        {key: (r.score, r.answer, r.status) for key, r in local.items()}
    assert not our_containers(docker_client)
    assert not ray.is_initialized()  # the backend let go of the cluster it connected to


def test_a_worker_killed_mid_task_has_its_task_retried(tmp_path, cluster, docker_client):
    backend = RayBackend(address=cluster.address)
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.update(summary=suite(tmp_path, "killed", backend, n=16)))
    runner.start()
    deadline = time.monotonic() + 240
    killed = None
    while runner.is_alive() and time.monotonic() < deadline and killed is None:
        done = (tmp_path / "killed" / "results.jsonl")
        busy = [node for node, jobs in backend.busy.items() if jobs]
        if busy and done.exists() and len(done.read_text().splitlines()) >= 2:
            info = ray.get(backend.workers[busy[0]].info.remote())
            os.kill(info["pid"], signal.SIGKILL)  # the worker process dies mid-task
            killed = info
        time.sleep(0.05)
    runner.join(timeout=300)
    assert killed is not None, "no task was in flight to kill"
    summary = outcome["summary"]
    results = read_results(tmp_path / "killed")
    assert (summary.tasks, summary.errors, summary.mean_score) == (16, 0, 1.0)
    retried = [result for result in results.values() if result.retried]
    assert retried and all(result.passed for result in retried)
    assert not our_containers(docker_client)  # the dead worker's warm and running containers were reaped


def test_a_task_whose_workers_die_every_time_is_recorded_as_crashed(tmp_path, cluster, docker_client):
    backend = RayBackend(address=cluster.address, max_attempts=1)  # no retry: the first death is final
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.update(summary=suite(tmp_path, "dead", backend, n=8)))
    runner.start()
    deadline = time.monotonic() + 240
    while runner.is_alive() and time.monotonic() < deadline:
        busy = [node for node, jobs in backend.busy.items() if jobs]
        if busy:
            os.kill(ray.get(backend.workers[busy[0]].info.remote())["pid"], signal.SIGKILL)
            break
        time.sleep(0.05)
    runner.join(timeout=300)
    results = read_results(tmp_path / "dead")
    assert len(results) == 8  # nothing dropped
    crashed = [result for result in results.values() if result.status == "crashed"]
    assert crashed and all("Ray worker running it died 1 times" in result.error for result in crashed)
    assert outcome["summary"].errors == len(crashed)
    assert not our_containers(docker_client)


def test_the_cluster_wide_rate_limit_paces_every_model_request(tmp_path, cluster, docker_client):
    interval = 0.5
    backend = RayBackend(address=cluster.address, rate_limit=RateLimit(requests_per_minute=60 / interval, burst=1))
    summary = suite(tmp_path, "limited", backend, n=8)
    assert (summary.errors, summary.mean_score) == (0, 1.0)
    # When each request reached the provider: its reply less the client's own latency (which
    # excludes the limiter's wait).
    sent = sorted(event.ts.timestamp() - event.latency_s for result in read_results(tmp_path / "limited").values()
                  for event in read_events(tmp_path / "limited" / result.trajectory).events
                  if event.event == "model_reply")
    assert len(sent) >= 16
    assert backend.rate_granted == len(sent)  # every request, from both nodes, went through the one limiter
    assert sent[-1] - sent[0] >= (len(sent) - 1) * interval - 0.5  # started interval apart (burst 1)
    assert not our_containers(docker_client)


def test_the_cli_runs_a_suite_on_the_cluster(tmp_path, cluster, docker_client):
    out = tmp_path / "cli"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run([sys.executable, "-m", "rlm_sandbox", "eval", "run", "sniah", "--n", "6", "-p", "tokens=1024",
                           "--model", "scripted/oracle", "--out", str(out), "--ray", cluster.address, "-q",
                           "--label", f"{TEST_SESSION_LABEL}={TEST_SESSION}"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "mean score 1.0000" in done.stdout
    assert all(result.node in node_ids(cluster) for result in read_results(out).values())
    assert not our_containers(docker_client)


def test_the_pipeline_example_runs_its_tasks_on_the_cluster(cluster):
    env = {key: value for key, value in os.environ.items() if not key.startswith("RLM_SANDBOX_")}
    env.update(PYTHONPATH=str(Path(__file__).resolve().parent.parent), RAY_ADDRESS=cluster.address)
    done = subprocess.run([sys.executable, "examples/ray_pipeline.py", "--quiet"], cwd=env["PYTHONPATH"],
                          capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert done.stdout.startswith("model: scripted demo model (offline")
    assert "correct: yes (8/8)" in done.stdout and "nodes used: 2" in done.stdout


def test_a_replayed_ray_run_gives_the_replayed_local_runs_results(tmp_path, cluster, docker_client):
    tape = tmp_path / "tape"
    suite(tmp_path, "recorded", n=6, record=tape, baseline="direct")
    on_ray = suite(tmp_path, "ray", RayBackend(address=cluster.address), n=6, replay=tape, baseline="direct")
    local = suite(tmp_path, "local", n=6, replay=tape, baseline="direct")
    assert on_ray.errors == local.errors == 0

    def comparable(name: str) -> dict:
        timing = {"duration_s": True, "node": True, "baseline": {"duration_s": True}}
        return {key: result.model_dump(exclude=timing) for key, result in read_results(tmp_path / name).items()}

    assert comparable("ray") == comparable("local")
    assert {result.node for result in read_results(tmp_path / "ray").values()} == node_ids(cluster)
    assert not our_containers(docker_client)


def test_a_node_s_slots_are_its_resource_else_what_its_cpus_and_memory_allow():
    from rlm_sandbox.eval.ray_backend import node_slots

    gib = 2**30
    assert node_slots({SLOTS: 3.0, "CPU": 64.0, "memory": 512 * gib}, 2 * gib) == 3  # advertised: used as is
    assert node_slots({"CPU": 16.0, "memory": 8 * gib}, 2 * gib) == 4  # memory-bound
    assert node_slots({"CPU": 2.0, "memory": 64 * gib}, 2 * gib) == 2  # CPU-bound
    assert node_slots({"CPU": 0.5, "memory": 1 * gib}, 2 * gib) == 1  # never zero
