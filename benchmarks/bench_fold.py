#!/usr/bin/env python3
"""How much of a long run's root input a provider's prefix cache could serve, with compaction.

    python benchmarks/bench_fold.py [--smoke] [--iterations 20] [--fold-to 0.5 0.25]

A scripted root model reads a long context in slices (each turn: ~400 characters of prose and
a block that prints ~4,000 characters), in a 16,384-token window, so older iterations are
folded into a digest several times. It answers through litellm over HTTP from the test
server that behaves like a provider's prefix cache (``OpenAICompatibleServer(
prefix_cache_min_tokens=1024)``: a request's cached tokens are the part of it that repeats
the start of an earlier request, at least 1,024, rounded down to 128). Prints ONE JSON
object: per fold target, the folds, root input tokens, the cached share and the mean request;
the same for 10 iterations that never fold; and, for two tasks of a suite (other query, other
context), how much of the second task's first request was cached.

``--fold-to`` compares fold targets by setting ``rlm_sandbox.core.compaction.FOLD_TO`` (a
module constant, not a setting) for the runs that follow; without it, the shipped value runs.
The figures are counts, not timings: they do not depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from rlm_sandbox import RLM
from rlm_sandbox.core import compaction
from rlm_sandbox.testing import OpenAICompatibleServer, ServedUsage

MIN_CACHED = 1024
WINDOW, MAX_TOKENS, SLICE = 16_384, 1_000, 4_000
PROSE = ("Reading the next slice of the log to find the records that matter for the query; the last one "
         "showed entries of the same shape, so I keep the same approach and note what each slice holds. ") * 2


def reader(iterations: int) -> Any:
    """The root model: one slice per turn, then FINAL."""

    turns = iter(range(iterations + 10))

    def respond(messages: list[dict]) -> str:
        turn = next(turns)  # not counted from the messages: folded iterations leave them
        if turn >= iterations:
            return "FINAL(done)"
        return f"{PROSE}\n```repl\nprint(context[{turn * SLICE}:{(turn + 1) * SLICE}])\n```"

    return respond


def run(server: OpenAICompatibleServer, iterations: int, window: int, query: str = "What does the log hold?",
        seed: int = 0) -> tuple[Any, list[ServedUsage]]:
    """One scripted run against ``server``; its result and the usage of its root requests."""
    context = "".join(f"{n:06d} record of type {'abcdefgh'[(n + seed) % 8]} amount {(n + seed) * 37 % 1000}\n"
                      for n in range(20_000))
    server.responder = reader(iterations)
    before = len(server.usage)
    result = RLM(model="openai/bench-root", api_base=server.url, api_key="sk-bench-0123456789", sandbox="local",
                 context_window=window, max_tokens=MAX_TOKENS, offload=False, max_output_chars=SLICE + 500,
                 max_iterations=iterations + 2).run(query, context)
    return result, server.usage[before:]


def suite() -> dict[str, Any]:
    """Two tasks of a suite (other query, other context): what the second's first request finds cached."""
    with OpenAICompatibleServer(reader(0), prefix_cache_min_tokens=MIN_CACHED) as server:
        run(server, 2, WINDOW)
        _, second = run(server, 2, WINDOW, query="Which types occur most?", seed=3)
    return {"second_task_first_request_tokens": second[0].prompt_tokens, "cached_tokens": second[0].cached_tokens}


def measure(iterations: int, window: int = WINDOW) -> dict[str, Any]:
    with OpenAICompatibleServer(reader(0), prefix_cache_min_tokens=MIN_CACHED) as server:
        result, usage = run(server, iterations, window)
    prompt, cached = sum(u.prompt_tokens for u in usage), sum(u.cached_tokens for u in usage)
    folds = [e for e in result.trajectory if e["event"] == "compaction"]
    return {"status": result.status, "requests": len(usage), "folds": len(folds),
            "fold_iterations": [e["iteration"] for e in folds], "root_input_tokens": prompt,
            "cached_tokens": cached, "cached_share": round(cached / max(prompt, 1), 3),
            "mean_request_tokens": round(prompt / max(len(usage), 1)), "uncached_tokens": prompt - cached}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="a short run: does it still work?")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--fold-to", type=float, nargs="*", default=None,
                        help="fold targets to compare (default: the shipped FOLD_TO)")
    args = parser.parse_args()
    iterations = 6 if args.smoke else args.iterations
    targets = args.fold_to or [compaction.FOLD_TO]
    shipped, runs = compaction.FOLD_TO, {}
    try:
        for target in targets:
            compaction.FOLD_TO = target
            runs[str(target)] = measure(iterations)
    finally:
        compaction.FOLD_TO = shipped
    unfolded = measure(10, window=1_000_000)  # 10 iterations, a window nothing folds in
    print(json.dumps({"benchmark": "fold", "smoke": args.smoke, "iterations": iterations, "window": WINDOW,
                      "shipped_fold_to": shipped, "runs": runs,
                      "ten_iterations_no_compaction": unfolded, "suite": suite()}, indent=2))


if __name__ == "__main__":
    main()
