"""arun: many runs in one event loop, each with its own sandbox, really overlapping."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

import rlm_sandbox
from rlm_sandbox.testing import Reply, ScriptedModel
from tests.rlm_helpers import make_rlm
from tests.waiting import wait_for_event

pytestmark = pytest.mark.docker


@pytest.mark.loop
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


@pytest.mark.loop
def test_module_level_arun_and_run_agree(sandbox_factory):
    script = ["```repl\nx = sum(context)\n```", "FINAL_VAR(x)"]
    first, second = ScriptedModel(list(script)), ScriptedModel(list(script))
    result = asyncio.run(rlm_sandbox.arun("Sum?", [1, 2, 3], model=first.model, sandbox_factory=sandbox_factory))
    assert result.answer == "6"
    assert rlm_sandbox.run("Sum?", [1, 2, 3], model=second.model, sandbox_factory=sandbox_factory).answer == "6"


@pytest.mark.loop
def test_sync_run_works_inside_a_running_event_loop(sandbox_factory):
    root = ScriptedModel(["FINAL(from a notebook)"])

    async def notebook_cell():
        return make_rlm(sandbox_factory, root).run("q", "ctx")  # sync call inside async code

    assert asyncio.run(notebook_cell()).answer == "from a notebook"


def owned_containers(docker_client, pid: int) -> list:
    return docker_client.api.containers(all=True, filters={"label": f"org.rlm-sandbox.owner-pid={pid}"})


def test_a_cancelled_run_closes_its_sandbox_at_once(sandbox_factory: Any, docker_client: Any) -> None:
    root = ScriptedModel(["```repl\ncell_started()\nimport time\ntime.sleep(60)\n```", "FINAL(never)"])
    cell_started = threading.Event()  # the barrier: the cell calls back to the host, then sleeps
    rlm = make_rlm(sandbox_factory, root, tools={"cell_started": cell_started.set})

    async def main() -> None:
        task = asyncio.ensure_future(rlm.arun("q", "ctx"))
        await asyncio.to_thread(wait_for_event, cell_started, what="the cell starting in its container")
        assert len(owned_containers(docker_client, os.getpid())) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    started = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - started < 20  # not the 60 s the cell wanted
    assert owned_containers(docker_client, os.getpid()) == []


CTRL_C_SCRIPT = """
import os, signal, threading
from rlm_sandbox import RLM
from rlm_sandbox.testing import ScriptedModel
root = ScriptedModel(["```repl\\nimport time\\ntime.sleep(60)\\n```", "FINAL(x)"])
threading.Timer(3, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
try:
    RLM(model=root.model).run("q", "ctx")
except KeyboardInterrupt:
    print("interrupted", flush=True)
signal.pause() if os.environ.get("HOLD") else None
"""


def test_ctrl_c_during_a_sync_run_removes_its_container(docker_client, sandbox_image):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
           "LITELLM_LOCAL_MODEL_COST_MAP": "True", "HOLD": "1"}
    process = subprocess.Popen([sys.executable, "-c", CTRL_C_SCRIPT], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()  # the process stays alive: atexit cannot be what cleaned up
        assert line.strip() == "interrupted", process.stderr.read() if process.poll() is not None else line
        assert owned_containers(docker_client, process.pid) == []
    finally:
        process.kill()
        process.wait()
