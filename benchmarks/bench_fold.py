#!/usr/bin/env python3
"""How much of a long run's root input a provider's prefix cache could serve, with compaction.

    python benchmarks/bench_fold.py [--smoke] [--iterations 20] [--fold-to 0.5 0.25]

A scripted root model reads a long context in slices (each turn: ~400 characters of prose and
a block that prints ~4,000 characters), in a 16,384-token window, so older iterations are
folded into a digest several times. Every root request is kept (the scripted model records
them) and scored as a provider's prefix cache would: a request's cached tokens are the part of
it (four characters a token, as the test server estimates) that repeats the start of an
earlier request, when that is at least 1,024 tokens, rounded down to 128. Prints ONE JSON
object: per fold target, the folds, root input tokens, the cached share and the mean request.

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
from rlm_sandbox.testing import ScriptedModel

MIN_CACHED, CACHE_STEP, CHARS_PER_TOKEN = 1024, 128, 4
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


def cached_tokens(requests: list[str]) -> list[int]:
    """Per request, the tokens a prefix cache serves: the longest start shared with an earlier request."""
    out = []
    for index, text in enumerate(requests):
        shared = max((len(os.path.commonprefix([text, earlier])) for earlier in requests[:index]), default=0)
        tokens = shared // CHARS_PER_TOKEN
        out.append(tokens // CACHE_STEP * CACHE_STEP if tokens >= MIN_CACHED else 0)
    return out


def measure(iterations: int) -> dict[str, Any]:
    context = "".join(f"{n:06d} record of type {'abcdefgh'[n % 8]} amount {n * 37 % 1000}\n" for n in range(20_000))
    with ScriptedModel(responder=reader(iterations)) as root:
        result = RLM(model=root.model, sandbox="local", context_window=WINDOW, max_tokens=MAX_TOKENS,
                     offload=False, max_output_chars=SLICE + 500, max_iterations=iterations + 2).run(
            "What does the log hold?", context)
        requests = [json.dumps(call, ensure_ascii=False) for call in root.calls]
    cached = cached_tokens(requests)
    prompt = [len(text) // CHARS_PER_TOKEN for text in requests]
    folds = [e for e in result.trajectory if e["event"] == "compaction"]
    return {"status": result.status, "requests": len(requests), "folds": len(folds),
            "fold_iterations": [e["iteration"] for e in folds], "root_input_tokens": sum(prompt),
            "cached_tokens": sum(cached), "cached_share": round(sum(cached) / max(sum(prompt), 1), 3),
            "mean_request_tokens": round(sum(prompt) / max(len(prompt), 1)),
            "uncached_tokens": sum(prompt) - sum(cached)}


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
    print(json.dumps({"benchmark": "fold", "iterations": iterations, "window": WINDOW, "shipped_fold_to": shipped,
                      "runs": runs}, indent=2))


if __name__ == "__main__":
    main()
