"""arun: many runs in one event loop, each with its own sandbox, really overlapping."""

from __future__ import annotations

import asyncio
import time

import pytest

import rlm_sandbox
from rlm_sandbox.testing import Reply, ScriptedModel
from tests.rlm_helpers import make_rlm

pytestmark = pytest.mark.docker


def test_parallel_async_runs_overlap(sandbox_factory):
    spans: dict[int, list[float]] = {}

    def slow_root(index: int):
        def respond(messages):
            spans.setdefault(index, []).append(time.monotonic())
            turn = sum(m["role"] == "assistant" for m in messages)
            text = "```repl\nprint(len(context))\n```" if turn == 0 else f"FINAL(run {index})"
            return Reply(text, delay_s=1.0)
        return respond

    roots = [ScriptedModel(responder=slow_root(i)) for i in range(4)]

    async def main():
        rlms = [make_rlm(sandbox_factory, root) for root in roots]
        return await asyncio.gather(*(rlm.arun("q", f"context {i}") for i, rlm in enumerate(rlms)))

    started = time.monotonic()
    results = asyncio.run(main())
    wall = time.monotonic() - started
    assert [r.answer for r in results] == [f"run {i}" for i in range(4)]
    # Each run spends >= 2 s asleep in its model; run one after another that is >= 8 s.
    # Overlap shows as every run's first model call starting before any run's second one.
    first_calls, second_calls = [s[0] for s in spans.values()], [s[1] for s in spans.values()]
    assert max(first_calls) < min(second_calls)
    print(f"4 runs x 2 model calls of 1 s each: {wall:.1f} s wall")


def test_module_level_arun_and_run_agree(sandbox_factory):
    script = ["```repl\nx = sum(context)\n```", "FINAL_VAR(x)"]
    first, second = ScriptedModel(list(script)), ScriptedModel(list(script))
    result = asyncio.run(rlm_sandbox.arun("Sum?", [1, 2, 3], model=first.model, sandbox_factory=sandbox_factory))
    assert result.answer == "6"
    assert rlm_sandbox.run("Sum?", [1, 2, 3], model=second.model, sandbox_factory=sandbox_factory).answer == "6"


def test_sync_run_works_inside_a_running_event_loop(sandbox_factory):
    root = ScriptedModel(["FINAL(from a notebook)"])

    async def notebook_cell():
        return make_rlm(sandbox_factory, root).run("q", "ctx")  # sync call inside async code

    assert asyncio.run(notebook_cell()).answer == "from a notebook"
