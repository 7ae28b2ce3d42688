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
  ``run_suite(concurrency=8)`` (a warm pool, a sandbox per task) against a plain sequential
  loop of ``rlm_sandbox.run`` over the same tasks. Figures: tasks per second of each (wall
  time of the suite or the loop, litellm already imported) and the speed-up. Target: at least
  5 tasks/s and at least 4x.

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
    from rlm_sandbox.eval import run_suite
    from rlm_sandbox.models import load_litellm

    load_litellm()
    started = time.perf_counter()
    summary = run_suite(["sniah"], model="scripted/oracle", out=out, n=1, params={"tokens": tokens}, progress=False)
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


def bench_throughput(tasks: int, concurrency: int) -> dict[str, Any]:
    import rlm_sandbox
    from rlm_sandbox.eval import run_suite
    from rlm_sandbox.eval.oracle import ensure_oracle
    from rlm_sandbox.eval.tasks import generate_tasks
    from rlm_sandbox.models import load_litellm

    load_litellm()
    ensure_oracle()
    todo = generate_tasks("sniah", n=tasks, seed=1, params={"tokens": 1024})
    contexts = [task.load_context() for task in todo]
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        summary = run_suite(todo, model="scripted/oracle", out=out, concurrency=concurrency, progress=False)
        suite_s = time.perf_counter() - started
    started = time.perf_counter()
    correct = 0
    for task, context in zip(todo, contexts):
        result = rlm_sandbox.run(task.query, context, model="scripted/oracle")
        correct += task.expected[0] in result.answer
    loop_s = time.perf_counter() - started
    suite_rate, loop_rate = tasks / suite_s, tasks / loop_s
    return {"tasks": tasks, "concurrency": concurrency, "suite_s": round(suite_s, 3), "loop_s": round(loop_s, 3),
            "suite_tasks_per_s": round(suite_rate, 2), "loop_tasks_per_s": round(loop_rate, 2),
            "speedup": round(suite_rate / loop_rate, 2), "suite_score": summary.mean_score,
            "loop_correct": correct, "target_tasks_per_s": 5, "target_speedup": 4,
            "met": suite_rate >= 5 and suite_rate / loop_rate >= 4}


def main() -> None:
    if len(sys.argv) == 4 and sys.argv[1] == "--child-sniah":
        _child_sniah(int(sys.argv[2]), sys.argv[3])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="smallest sizes: checks the script, not the figures")
    parser.add_argument("--only", choices=BENCHES, action="append")
    args = parser.parse_args()
    chosen = args.only or BENCHES
    results: dict[str, Any] = {"smoke": args.smoke, "load_before": os.getloadavg()[0]}
    if "sniah_10m" in chosen:
        log("sniah_10m ...")
        results["sniah_10m"] = bench_sniah(1_000_000 if args.smoke else 10_000_000)
    if "throughput" in chosen:
        log("throughput ...")
        results["throughput"] = bench_throughput(4 if args.smoke else 100, 2 if args.smoke else 8)
    results["load_after"] = os.getloadavg()[0]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
