#!/usr/bin/env python3
"""Evaluation: a 10M-token S-NIAH task with the scripted oracle, and eval throughput.

    python benchmarks/bench_eval.py [--smoke] [--only sniah_10m|throughput]

- ``sniah_10m``: one ``sniah`` task of 10,000,000 tokens (40 MB of text), run by
  ``run_suite`` with ``scripted/oracle`` in a fresh child process: ``wall_s`` from the start
  of the suite to its end (building the context, uploading it, the oracle's code scanning it,
  the sub-call, scoring, reports; not the child's start-up and litellm import), and the
  child's ``peak_rss_mib`` (``ru_maxrss``: the host process, the whole of its life). DESIGN's
  target: under 60 s and under 1.5 GiB.
- ``throughput``: 100 small ``sniah`` tasks (1,024 tokens) with the oracle, as
  ``run_suite(tasks, SuiteConfig(concurrency=8, ...))`` (a warm pool, a sandbox per task) against a plain sequential
  loop of ``rlm_sandbox.run`` over the same tasks. Figures: tasks per second of each (wall
  time of the suite or the loop, litellm already imported) and the speed-up. Target: at least
  5 tasks/s and at least 4x. ``--sandbox local`` runs both sides in local subprocess
  sandboxes instead of containers (NOT a security boundary; for measuring only), which
  separates Docker's share of the time from the engine's and the runner's. ``--model-delay S``
  makes every oracle reply take S seconds (an asyncio sleep, as a real model's latency):
  the scripted oracle answers at once, so without it both sides are CPU-bound, and on two
  cores concurrency can buy little more than 2x. ``suite_cpu_per_task_s``: this process's CPU
  time per task during the suite (the runner, the engine, litellm); with ``--sandbox local``,
  ``suite_children_cpu_per_task_s`` adds the kernels' (the same work a container's kernel does).

Prints one JSON object on stdout; progress on stderr. ``--smoke`` (tests/test_benchmarks.py)
runs 1M tokens and 4 tasks: it checks the script works; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

BENCHES = ["sniah_10m", "throughput"]


def log(message: str) -> None:
    print(f"bench_eval: {message}", file=sys.stderr, flush=True)


def _child_sniah(tokens: int, out: str) -> None:
    """In a fresh process: import first (not timed), then time one big task's suite."""
    from rlm_sandbox.eval import SuiteConfig, run_suite
    from rlm_sandbox.models import load_litellm

    load_litellm()
    started = time.perf_counter()
    summary = run_suite(["sniah"], SuiteConfig(model="scripted/oracle", out=out, n=1, params={"tokens": tokens},
                                               progress=False))
    wall = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"wall_s": round(wall, 3), "peak_rss_mib": round(peak, 1), "score": summary.mean_score,
                      "errors": summary.errors}))


def bench_sniah(tokens: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as out:
        done = subprocess.run([sys.executable, __file__, "--child-sniah", str(tokens), out],
                              capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    figures.update(tokens=tokens, target_wall_s=60, target_peak_rss_mib=1536,
                   met=figures["wall_s"] < 60 and figures["peak_rss_mib"] < 1536 and figures["score"] == 1.0)
    return figures


def _cpu_s() -> tuple[float, float]:
    """CPU seconds (user + system) of this process, and of its reaped children (local kernels)."""
    own, children = (resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def bench_throughput(tasks: int, concurrency: int, sandbox: str = "docker", delay_s: float = 0.0) -> dict[str, Any]:
    import rlm_sandbox
    from rlm_sandbox.eval import SuiteConfig, run_suite
    from rlm_sandbox.eval.oracle import ensure_oracle, respond
    from rlm_sandbox.eval.tasks import generate_tasks
    from rlm_sandbox.models import load_litellm
    from rlm_sandbox.testing import Reply, ScriptedModel

    load_litellm()
    ensure_oracle()
    model = "scripted/oracle"
    if delay_s:  # the oracle's answers, each after a model-like wait
        slow = ScriptedModel(responder=lambda messages: Reply(respond(messages), delay_s=delay_s), name="oracle-slow")
        model = slow.model
    todo = generate_tasks("sniah", n=tasks, seed=1, params={"tokens": 1024})
    contexts = [task.load_context() for task in todo]
    with tempfile.TemporaryDirectory() as out:
        cpu_before = _cpu_s()
        started = time.perf_counter()
        summary = run_suite(todo, SuiteConfig(model=model, out=out, concurrency=concurrency, progress=False,
                                              options={"sandbox": sandbox}))
        suite_s = time.perf_counter() - started
        suite_cpu = [after - before for before, after in zip(cpu_before, _cpu_s(), strict=True)]
    started = time.perf_counter()
    correct = 0
    for task, context in zip(todo, contexts, strict=True):
        result = rlm_sandbox.run(task.query, context, model=model, sandbox=sandbox)
        correct += task.expected[0] in result.answer
    loop_s = time.perf_counter() - started
    suite_rate, loop_rate = tasks / suite_s, tasks / loop_s
    return {"tasks": tasks, "concurrency": concurrency, "sandbox": sandbox, "model_delay_s": delay_s,
            "suite_s": round(suite_s, 3), "loop_s": round(loop_s, 3),
            "suite_tasks_per_s": round(suite_rate, 2), "loop_tasks_per_s": round(loop_rate, 2),
            "speedup": round(suite_rate / loop_rate, 2), "suite_cpu_per_task_s": round(suite_cpu[0] / tasks, 4),
            "suite_children_cpu_per_task_s": round(suite_cpu[1] / tasks, 4), "suite_score": summary.mean_score,
            "loop_correct": correct, "target_tasks_per_s": 5, "target_speedup": 4,
            "met": suite_rate >= 5 and suite_rate / loop_rate >= 4}


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child-sniah":
        _child_sniah(int(sys.argv[2]), sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="smallest sizes: checks the script, not the figures")
    parser.add_argument("--only", choices=BENCHES, action="append")
    parser.add_argument("--sandbox", choices=["docker", "local"], default="docker",
                        help="throughput: containers (default) or local subprocesses (to separate Docker's share)")
    parser.add_argument("--model-delay", type=float, default=0.0, metavar="S",
                        help="throughput: every oracle reply takes S seconds, like a real model's latency")
    args = parser.parse_args()
    chosen = args.only or BENCHES
    results: dict[str, Any] = {"smoke": args.smoke, "load_before": os.getloadavg()[0]}
    if "sniah_10m" in chosen:
        log("sniah_10m ...")
        results["sniah_10m"] = bench_sniah(1_000_000 if args.smoke else 10_000_000)
    if "throughput" in chosen:
        log("throughput ...")
        results["throughput"] = bench_throughput(4 if args.smoke else 100, 2 if args.smoke else 8, args.sandbox,
                                         args.model_delay)
    results["load_after"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
