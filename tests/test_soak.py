"""Soak: sustained load through the real stack, out of the default run.

    RLM_SOAK=1 pytest -s tests/test_soak.py

16 concurrent runs x 50 cells, each cell a callback and a sub-call through a scripted
OpenAI-compatible server on 127.0.0.1, then 200 short runs back to back. Asserts zero
protocol errors, zero leaked containers, and host memory and open file descriptors stable
(measured at the start, after the concurrent runs, halfway through the short runs and at the
end; printed, and recorded in BENCHMARKS.md). The start reading is taken before anything
is imported or pooled, so stability is judged from halfway to the end. About 5 minutes on 2
shared cores. The flag is not named RLM_SANDBOX_*: the settings loader warns about any
RLM_SANDBOX_ variable that is not a setting.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from rlm_sandbox import RLM
from rlm_sandbox.testing import OpenAICompatibleServer

pytestmark = [pytest.mark.docker,
              pytest.mark.skipif(os.environ.get("RLM_SOAK") != "1",
                                 reason="the soak test runs only with RLM_SOAK=1 (about 5 minutes)")]

SESSIONS, CELLS, SHORT_RUNS = 16, 50, 200
CELL = "```repl\nr = llm_query('sub {n}')\ntotal = globals().get('total', 0) + len(r)\nprint('total', total)\n```"


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def reading(label: str) -> dict[str, Any]:
    return {"at": label, "rss_MiB": round(rss_mib(), 1), "fds": open_fds(), "threads": threading.active_count()}


class Responder:
    """The scripted server's brain: a sub-call (one user message) answers "ok"; a root turn
    of session K answers with the next cell until CELLS cells ran, then FINAL(total)."""

    def __init__(self) -> None:
        self.turns: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, messages: list[dict]) -> str:
        if len(messages) == 1:
            return "ok"
        text = " ".join(str(m.get("content", "")) for m in messages[:3])
        session = re.search(r"(session-\d+|short-\d+)", text)
        key = session.group(1) if session else "unknown"
        with self.lock:
            turn = self.turns[key] = self.turns.get(key, 0) + 1
        if key.startswith("short-") or turn > CELLS:
            return "FINAL(done)" if key.startswith("short-") else "FINAL_VAR(total)"
        return CELL.format(n=turn)


def test_soak(sandbox_factory: Any, docker_client: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rlm_sandbox")
    responder = Responder()
    readings = [reading("start")]
    with OpenAICompatibleServer(responder) as server:
        def rlm(**options: Any) -> RLM:
            return RLM(model="openai/soak-root", sub_model="openai/soak-sub", api_base=server.url,
                       api_key="sk-soak", sandbox_factory=sandbox_factory, **options)

        def session(k: int) -> Any:
            return rlm(max_iterations=CELLS + 5).run(f"session-{k}: add up", "ctx")

        with ThreadPoolExecutor(SESSIONS) as pool:
            long_runs = list(pool.map(session, range(SESSIONS)))
        readings.append(reading(f"after {SESSIONS} x {CELLS} cells"))
        short_runs = []
        for n in range(SHORT_RUNS):
            short_runs.append(rlm().run(f"short-{n}", "ctx"))
            if n == SHORT_RUNS // 2 - 1:
                readings.append(reading(f"after {n + 1} short runs"))
        readings.append(reading(f"after {SHORT_RUNS} short runs"))
        requests = len(server.requests)
    print("\nSOAK " + json.dumps({"readings": readings, "requests": requests}))
    assert [(r.status, r.answer) for r in long_runs] == [("completed", str(2 * CELLS))] * SESSIONS
    assert all((r.status, r.answer) == ("completed", "done") for r in short_runs)
    assert requests == SESSIONS * (2 * CELLS + 1) + SHORT_RUNS
    protocol = [r.getMessage() for r in caplog.records if r.name.startswith("rlm_sandbox.sandbox")]
    assert protocol == [], protocol[:5]
    leaked = docker_client.api.containers(all=True, filters={"label": "org.rlm-sandbox.owner-pid"})
    ours = [c for c in leaked if c["Labels"].get("org.rlm-sandbox.owner-pid") == str(os.getpid())]
    assert ours == [], [c["Id"][:12] for c in ours]
    middle, end = readings[2], readings[-1]  # halfway through the short runs, and the end
    assert end["rss_MiB"] - middle["rss_MiB"] < 50, readings
    assert end["fds"] - middle["fds"] <= 4, readings
    assert end["threads"] - middle["threads"] <= 4, readings
