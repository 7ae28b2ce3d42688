"""Traces of real runs (scripted models, real Docker) for the viewers' tests: a completed
run, a run with child runs, a budget stop, and an interrupted run (Ctrl-C on the CLI)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from rlm_sandbox.events import write_jsonl
from rlm_sandbox.testing import OpenAICompatibleServer, Reply, ScriptedModel
from tests.rlm_helpers import make_rlm

REPO = Path(__file__).resolve().parent.parent
LONG_OUTPUT = "\n".join(f"line {n} of the long output" for n in range(1, 61))


def completed_run(sandbox_factory: Any, path: Path) -> Any:
    root = ScriptedModel([
        "I will look first.\n```repl\nfor n in range(1, 61):\n    print(f'line {n} of the long output')\n```",
        "```repl\nsummary = llm_query('Summarise: ' + context)\nprint(summary)\n```",
        "FINAL(the summary is short)",
    ])
    sub = ScriptedModel(responder=lambda messages: Reply("a short summary"))
    # offload=False: the whole output is in the cell event (the viewers clip it, --full does not)
    result = make_rlm(sandbox_factory, root, sub, offload=False).run("What does it say?", "a context about gardens")
    write_jsonl(path, result.trajectory)
    return result


def children_run(sandbox_factory: Any, path: Path) -> Any:
    root = ScriptedModel([
        "```repl\nsizes = rlm_query_batched([('count', 'xx'), ('count', 'yyy')])\n"
        "answers = llm_query_batched(['first?', 'second?'])\nprint(sizes, answers)\n```",
        "FINAL(done)",
    ])

    def sub_reply(messages: list[dict]) -> Any:
        if messages[0]["role"] == "system":  # a child run's root model
            return "```repl\nFINAL(str(len(context)))\n```"
        return Reply("sub answer to " + messages[-1]["content"])

    sub = ScriptedModel(responder=sub_reply)
    result = make_rlm(sandbox_factory, root, sub, max_depth=1).run("Sizes?", "ctx")
    write_jsonl(path, result.trajectory)
    return result


def budget_run(sandbox_factory: Any, path: Path) -> Any:
    root = ScriptedModel(["```repl\nfor i in range(5):\n    print(llm_query(f'part {i}'))\n```",
                          "FINAL(best effort)"])
    sub = ScriptedModel(responder=lambda messages: "partial answer")
    result = make_rlm(sandbox_factory, root, sub, max_sub_calls=2).run("All parts?", "ctx")
    write_jsonl(path, result.trajectory)
    return result


def interrupted_cli_run(tmp: Path, trace: Path, html: Path) -> subprocess.CompletedProcess:
    """``rlm-sandbox run --trace --html`` stopped by Ctrl-C while its second model call hangs."""
    context = tmp / "interrupted-context.txt"
    context.write_text("x")
    release = threading.Event()
    replies = iter(["```repl\nprint('step one')\n```"])

    def responder(messages: list[dict]) -> str:
        reply = next(replies, None)
        if reply is None:
            release.wait(120)
            return "FINAL(too late)"
        return reply

    with OpenAICompatibleServer(responder) as server:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("RLM_SANDBOX_")}
        env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(REPO),
                    "RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test"})
        proc = subprocess.Popen([sys.executable, "-m", "rlm_sandbox", "run", "-q", "x", "-f", str(context),
                                 "-m", "openai/x", "--trace", str(trace), "--html", str(html)], env=env, cwd=REPO,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not (trace.exists() and '"event":"cell"' in trace.read_text()):
                time.sleep(0.2)
            time.sleep(0.5)  # the second model call is on its way
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            release.set()
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


class Traces:
    """The four traces, their results, and the interrupted CLI run's outcome."""

    def __init__(self, root: Path, sandbox_factory: Any) -> None:
        self.root = root
        self.completed, self.children, self.budget = root / "completed.jsonl", root / "children.jsonl", \
            root / "budget.jsonl"
        self.interrupted, self.interrupted_html = root / "interrupted.jsonl", root / "interrupted.html"
        self.completed_result = completed_run(sandbox_factory, self.completed)
        self.children_result = children_run(sandbox_factory, self.children)
        self.budget_result = budget_run(sandbox_factory, self.budget)
        self.interrupted_cli = interrupted_cli_run(root, self.interrupted, self.interrupted_html)


@pytest.fixture(scope="session")
def traces(tmp_path_factory: pytest.TempPathFactory, sandbox_image: str, docker_client: Any) -> Traces:
    from rlm_sandbox.sandbox import DockerSandbox
    from tests.conftest import TEST_SESSION, TEST_SESSION_LABEL

    def factory(spec: Any, context: Any, host: Any) -> Any:
        return DockerSandbox(context, image=sandbox_image, client=docker_client, limits=spec.limits,
                             host=host, labels={TEST_SESSION_LABEL: TEST_SESSION})

    return Traces(tmp_path_factory.mktemp("traces"), factory)
