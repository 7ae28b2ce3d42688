#!/usr/bin/env python3
"""Threads a run holds, by batch width: does a wider batch cost more threads?

    python benchmarks/bench_threads.py [--widths 1 16 64] [--children 1 4] [--smoke]

One run per width whose only cell calls ``llm_query_batched`` with N prompts (the scripted
sub-model answers each after 0.5 s, so all N are in flight together), then runs whose cell
calls ``rlm_query_batched`` with N child runs (each child has its own sandbox). A sampler
thread reads ``threading.active_count()`` every 5 ms; the figure is the peak during the run
minus the count before it. A warm-up run at the widest batch first creates the threads the
process keeps for good (the model loop, litellm's and the scripted provider's executors),
so what is left is what a run itself holds. Prints one JSON object; no timing is measured.
``--smoke`` (what tests/test_benchmarks.py runs) is one batch of 2 and one child run, with
0.1 s model latency: it checks the script works; its counts mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import rlm_sandbox  # noqa: E402 - after the path setup above
from rlm_sandbox.sandbox.client import docker_client  # noqa: E402 - after the path setup above
from rlm_sandbox.sandbox.reaper import LABEL_PID  # noqa: E402 - after the path setup above
from rlm_sandbox.testing import Reply, ScriptedModel  # noqa: E402 - after the path setup above

#: Seconds the scripted models take to answer, so that a batch is in flight at once.
LATENCY = {"delay_s": 0.5}


def extra_threads(code: str, sub_reply: Any, sandbox: str) -> int:
    """Peak threads above the count before the run, while a run executes ``code`` once."""
    root = ScriptedModel(responder=lambda m: "FINAL(done)" if any(x["role"] == "assistant" for x in m)
                         else f"```repl\n{code}\n```")
    sub = ScriptedModel(responder=sub_reply)
    rlm = rlm_sandbox.RLM(model=root.model, sub_model=sub.model, max_concurrency=64, max_depth=1, sandbox=sandbox)
    before = threading.active_count()
    peak, stop = [before], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], threading.active_count())
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = rlm.run("go", "context")
    finally:
        stop.set()
        sampler.join()
        root.close()
        sub.close()
    if result.status != "completed":
        raise SystemExit(f"the run did not complete: {result.status} {result.error}")
    return peak[0] - before - 1  # the sampler itself


def batch(width: int, sandbox: str) -> int:
    return extra_threads(f"r = llm_query_batched(['q'] * {width})\nprint(len(r))",
                         lambda m: Reply("ok", **LATENCY), sandbox)


def children(width: int, sandbox: str) -> int:
    return extra_threads(f"r = rlm_query_batched(['q'] * {width})\nprint(len(r))",
                         lambda m: Reply("FINAL(child)", **LATENCY), sandbox)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[1, 16, 64])
    parser.add_argument("--children", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--sandbox", default="docker", help="docker (default) or local")
    parser.add_argument("--smoke", action="store_true",
                        help="one batch of 2 and one child run, 0.1 s latency: checks the script works")
    args = parser.parse_args(argv)
    if args.smoke:
        args.widths, args.children, LATENCY["delay_s"] = [2], [1], 0.1
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    batch(max(args.widths), args.sandbox)  # warm-up: threads the process keeps for good
    out: dict[str, Any] = {
        "llm_query_batched": {str(w): batch(w, args.sandbox) for w in args.widths},
        "rlm_query_batched": {str(w): children(w, args.sandbox) for w in args.children},
        "smoke": args.smoke,
        "note": "peak threads above the count before the run, after a warm-up run at the widest batch"}
    leaked = []
    if args.sandbox == "docker":  # every run closes its sandboxes: none may be left
        client = docker_client()
        leaked = client.api.containers(all=True, filters={"label": f"{LABEL_PID}={os.getpid()}"})
        for container in leaked:
            client.api.remove_container(container["Id"], force=True)
        out["leaked_containers"] = len(leaked)
    print(json.dumps(out, indent=1))
    return 1 if leaked else 0


if __name__ == "__main__":
    raise SystemExit(main())
