#!/usr/bin/env python3
"""Evaluation on Ray: the same scripted tasks locally and on a local two-node Ray cluster.

    python benchmarks/bench_ray.py [--tasks 100] [--slots 2]

One machine, two Ray nodes (a head and a worker, each its own raylet with ``--slots``
``rlm_sandbox_slots``), ``sniah`` tasks of 1,024 tokens with the scripted oracle:

- ``local``: ``run_suite`` with the local backend, concurrency = both nodes' slots.
- ``ray_actors``: ``RayBackend`` (what ships: an actor per node holding a warm pool).
- ``ray_tasks``: the alternative, a Ray task per job that starts a cold sandbox (defined
  here only, to compare).

Figures: wall time (suite start to end, cluster already up, litellm imported) and tasks/s of
each; ``overhead_ms_per_task`` = (Ray wall - local wall) x slots / tasks: the extra
slot-time Ray costs each task, all causes together (on one machine Ray cannot be faster: its
own daemons compete for the same cores); ``call_overhead_ms`` = per job, the driver's wait for
the actor less the actor's own time on the job (scheduling, (de)serialising the job, its
trace and result): Ray's overhead proper, DESIGN's target under 50 ms; ``call_ms`` = the round
trip of an empty call to a node actor (p50). Prints one JSON
object on stdout; progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import ray
from ray.cluster_utils import Cluster

from rlm_sandbox.eval import SuiteConfig, run_suite
from rlm_sandbox.eval.backend import execute_job
from rlm_sandbox.eval.ray_backend import SLOTS, RayBackend
from rlm_sandbox.models import load_litellm

BENCHES = ["local", "ray_actors", "ray_tasks"]


def log(message: str) -> None:
    print(f"bench_ray: {message}", file=sys.stderr, flush=True)


@ray.remote(num_cpus=0, resources={SLOTS: 1})
def _cold_job(job: Any) -> Any:
    """The alternative design: one Ray task per job, a cold sandbox each time."""
    return asyncio.run(execute_job(job))


class TaskPerJobBackend:
    """Ray tasks instead of node actors (for the comparison; not shipped)."""

    def __init__(self, address: str) -> None:
        self.address = address

    async def start(self) -> None:
        ray.init(address=self.address, log_to_driver=False)

    async def run(self, job: Any) -> Any:
        return await _cold_job.remote(job)

    async def close(self) -> None:
        ray.shutdown()


def timed_suite(out: Path, tasks: int, backend: Any = None, concurrency: int = 4) -> dict[str, Any]:
    started = time.perf_counter()
    config = SuiteConfig(model="scripted/oracle", out=out, n=tasks, params={"tokens": "1024"}, progress=False,
                         concurrency=concurrency)
    summary = run_suite(["sniah"], config, backend=backend)
    wall = time.perf_counter() - started
    return {"wall_s": round(wall, 2), "tasks_per_s": round(tasks / wall, 2), "score": summary.mean_score,
            "errors": summary.errors}


def call_ms(address: str) -> float:
    backend = RayBackend(address=address)
    asyncio.run(backend.start())
    worker = next(iter(backend.workers.values()))
    times = []
    for _ in range(200):
        started = time.perf_counter()
        ray.get(worker.info.remote())
        times.append((time.perf_counter() - started) * 1000)
    asyncio.run(backend.close())
    return round(statistics.median(times), 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--slots", type=int, default=2, help="rlm_sandbox_slots of each of the two nodes")
    args = parser.parse_args()
    load_litellm()
    slots = 2 * args.slots
    log("starting a two-node Ray cluster")
    started = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {SLOTS: args.slots},
                                                            "include_dashboard": False})
    cluster.add_node(num_cpus=1, resources={SLOTS: args.slots})
    cluster.wait_for_nodes()
    report: dict[str, Any] = {"tasks": args.tasks, "slots": slots,
                              "cluster_start_s": round(time.perf_counter() - started, 1)}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            log("warm-up (image, litellm, worker imports)")
            timed_suite(out / "warm-local", 4, concurrency=slots)
            timed_suite(out / "warm-ray", 4, RayBackend(address=cluster.address))
            log("local")
            report["local"] = timed_suite(out / "local", args.tasks, concurrency=slots)
            log("ray_actors")
            backend = RayBackend(address=cluster.address)
            report["ray_actors"] = timed_suite(out / "actors", args.tasks, backend)
            overheads = sorted(backend.overheads)
            report["ray_actors"]["call_overhead_ms"] = {
                "p50": round(statistics.median(overheads) * 1000, 1),
                "p90": round(overheads[int(len(overheads) * 0.9)] * 1000, 1), "mean": round(
                    statistics.fmean(overheads) * 1000, 1)}
            log("ray_tasks")
            report["ray_tasks"] = timed_suite(out / "tasks", args.tasks, TaskPerJobBackend(cluster.address))
        report["call_ms"] = call_ms(cluster.address)
        for name in ("ray_actors", "ray_tasks"):
            extra = (report[name]["wall_s"] - report["local"]["wall_s"]) * slots / args.tasks
            report[name]["overhead_ms_per_task"] = round(extra * 1000, 1)
    finally:
        cluster.shutdown()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
