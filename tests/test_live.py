"""The live display: in a real pseudo-terminal (it appears, updates, and leaves a clean
screen), never an escape code when stderr is not a terminal, --quiet, and the events it
draws from (retries as they happen, the image build's steps)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
import uuid
from pathlib import Path
from typing import Any

import pyte
import pytest

from rlm_sandbox.testing import OpenAICompatibleServer, Reply

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parent.parent
COLUMNS, ROWS = 140, 60


class RateLimited(Exception):
    status_code = 429


def _env(server: OpenAICompatibleServer, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("RLM_SANDBOX_")}
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(REPO), "TERM": "xterm-256color",
                "RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test", **extra})
    env.pop("NO_COLOR", None)
    return env


def in_pty(args: list[str], env: dict[str, str], timeout: float = 240) -> tuple[int, str]:
    """Run the CLI with stdin, stdout and stderr on a pseudo-terminal; returns (exit code, all it wrote)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "rlm_sandbox", *args], stdin=slave, stdout=slave,
                               stderr=slave, env=env, cwd=REPO, close_fds=True)
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                output += chunk
            elif process.poll() is not None:
                break
        else:
            process.kill()
            pytest.fail(f"the CLI did not finish within {timeout} s; it wrote:\n{output.decode(errors='replace')}")
    finally:
        os.close(master)
    return process.wait(timeout=30), output.decode("utf-8", errors="replace")


def final_screen(output: str) -> list[str]:
    """The terminal's lines once everything written was applied (a real VT emulator)."""
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.Stream(screen).feed(output)
    return [line.rstrip() for line in screen.display if line.strip()]


def scripted_root(calls: list[int]) -> Any:
    """429 first (a retry the display counts down), then code whose sub-call answers slowly
    (sub-calls in flight), then FINAL."""

    def reply(messages: list[dict]) -> Any:
        calls.append(1)
        prompt = messages[-1]["content"]
        if prompt.startswith("Summarise"):  # the sub-call
            return Reply("a slow summary", delay_s=2.0)
        turn = sum(1 for m in messages if m["role"] == "assistant")
        if turn == 0 and len(calls) == 1:
            return Reply(error=RateLimited("429 slow down"))
        if turn == 0:
            return "```repl\nsummary = llm_query('Summarise: ' + context)\nprint(summary)\n```"
        return "FINAL(done)"

    return reply


def test_the_live_display_appears_updates_and_leaves_a_clean_screen(tmp_path, sandbox_image):
    context = tmp_path / "c.txt"
    context.write_text("some notes")
    calls: list[int] = []
    with OpenAICompatibleServer(scripted_root(calls)) as server:
        code, output = in_pty(["run", "-q", "What?", "-f", str(context), "-m", "openai/x",
                               "--set", "max_sub_calls=5"], _env(server))
    assert code == 0, output
    assert "\x1b[" in output  # drawn with escape codes, on a terminal
    # It updates as the run goes: each of these was on screen at some point.
    assert "iteration 1 of 20" in output
    assert "retrying the root model after a rate limit, attempt 2 of 5, in " in output
    assert "running cell 1 of 1" in output and "1 sub-call in flight, 0 done" in output
    assert "sub-calls" in output and "1 of 5" in output  # a bar for the budget with a limit
    assert "cost unknown" in output  # a local model has no price: unknown, never $0
    # And then it is gone: the screen holds the answer and the one-line summary, nothing else.
    screen = final_screen(output)
    assert screen[-2:] == ["done", screen[-1]] and screen[-1].startswith("status=completed iterations=2"), screen
    assert not any("iteration 1 of" in line or "tokens" in line.split("status=")[0] for line in screen), screen


def test_verbose_on_a_terminal_prints_the_event_log_above_the_live_display(tmp_path, sandbox_image):
    context = tmp_path / "c.txt"
    context.write_text("some notes")
    calls: list[int] = []
    with OpenAICompatibleServer(scripted_root(calls)) as server:
        code, output = in_pty(["run", "-q", "What?", "-f", str(context), "-m", "openai/x", "-v"], _env(server))
    assert code == 0, output
    screen = final_screen(output)
    log = [line for line in screen if line.startswith("[rlm ")]
    # every event's line, whole and in order, with the retry as it happened
    assert any("-- iteration 1 (openai/x)" in line for line in log), screen
    assert any("model call openai/x: attempt 1 of 5 failed (RateLimitError" in line for line in log), screen
    assert any("sub-call openai/x (ok): Summarise: some notes -> a slow summary" in line for line in log), screen
    assert log[-1].endswith("FINAL (completed, answer from final): done"), screen
    assert "iteration 1 of 20" in output  # the live display was there too
    assert screen[-2] == "done" and screen[-1].startswith("status=completed")


def test_not_a_terminal_means_no_escape_codes_plain_lines_with_v_and_quiet_prints_the_answer_alone(tmp_path,
                                                                                                      sandbox_image):
    context = tmp_path / "c.txt"
    context.write_text("some notes")
    runs = {}
    for name, flags in (("plain", []), ("verbose", ["-v"]), ("quiet", ["--quiet"])):
        calls: list[int] = []
        with OpenAICompatibleServer(scripted_root(calls)) as server:
            runs[name] = subprocess.run([sys.executable, "-m", "rlm_sandbox", "run", "-q", "What?", "-f",
                                         str(context), "-m", "openai/x", *flags], capture_output=True, text=True,
                                        env=_env(server), cwd=REPO, timeout=240)
    for name, done in runs.items():
        assert done.returncode == 0, (name, done.stderr)
        assert "\x1b" not in done.stdout + done.stderr, name
        assert done.stdout == "done\n", name
    assert runs["plain"].stderr.splitlines()[-1].startswith("status=completed")
    assert len(runs["plain"].stderr.splitlines()) == 1  # the one-line summary only
    verbose = runs["verbose"].stderr.splitlines()
    assert any("attempt 1 of 5 failed (RateLimitError" in line for line in verbose)
    assert sum(line.startswith("[rlm ") for line in verbose) >= 8
    assert runs["quiet"].stderr == ""


def test_the_live_state_counts_a_retry_down_and_shows_child_runs_and_budgets():
    from rlm_sandbox.events import EventLog
    from rlm_sandbox.events import types as ev
    from rlm_sandbox.view.live import LiveState

    now = [100.0]
    state = LiveState(clock=lambda: now[0])
    log = EventLog([state.update])
    root = log.recorder()
    root.emit(ev.RunStart, query="q", model="m", sub_model="s", context_type="str",
              settings={"max_iterations": 5, "max_cost_usd": 1.0, "max_sub_calls": None})
    root.emit(ev.Iteration, iteration=2, model="m")
    root.emit(ev.ModelRequest, call_id="c1", role="root", model="m", purpose="step", messages=[])
    root.emit(ev.ModelRetry, call_id="c1", role="root", model="m", attempt=1, max_attempts=5,
              cause="RateLimitError: 429", wait_s=2.5)
    now[0] += 1.0
    line = state.describe(state.runs[root.run_id])
    assert line.startswith("iteration 2 of 5 · waiting for the root model")
    assert "retrying the root model after a rate limit, attempt 2 of 5, in 1.5 s" in line
    root.emit(ev.ModelReply, call_id="c1", role="root", model="m", outcome="ok",
              text="```repl\nx\n```\n```repl\ny\n```", input_tokens=10, output_tokens=5, cost_usd=None)
    line = state.describe(state.runs[root.run_id])
    assert "retrying" not in line and "running cell 1 of 2" in line
    child = root.child()
    child.emit(ev.RunStart, query="child question", model="s", sub_model="s", context_type="none")
    child.emit(ev.Iteration, iteration=1, model="s")
    assert state.describe(state.runs[child.run_id]) == "iteration 1 of 5 · waiting for its model"
    labels = [row[0] for row in state.budgets()]
    assert labels == ["iterations", "cost"]  # only the limits that are set
    assert state.budgets()[1][3] == "unknown of $1.0000"  # a price was unknown
    assert "cost unknown" in state.totals()


def test_the_image_build_reports_each_step_to_a_callback_and_prints_nothing(tmp_path, docker_client, sandbox_image,
                                                                          capfd):
    from rlm_sandbox.sandbox.image import build_image, ensure_base, kernel_dir

    kernel = tmp_path / "kernel"
    shutil.copytree(kernel_dir(), kernel, ignore=shutil.ignore_patterns("__pycache__"))
    (kernel / "marker.py").write_text(f"# {uuid.uuid4().hex}\n")  # a kernel no image was built for
    base = ensure_base(docker_client, progress=False)  # present on any machine, fresh ones included
    tag = f"rlm-sandbox-test-progress:{uuid.uuid4().hex[:8]}"
    seen = []
    try:
        build_image(tag, base, client=docker_client, kernel_root=kernel, progress=seen.append)
    finally:
        docker_client.api.remove_image(tag, force=True)
    steps = [p for p in seen if p.step is not None]
    assert steps and steps[0].step == 1 and steps[-1].step == steps[-1].steps
    assert [p.step for p in steps] == list(range(1, steps[-1].steps + 1))
    assert seen[-1].done and seen[-1].image == tag
    assert "step 1/" in steps[0].message
    captured = capfd.readouterr()
    assert "rlm-sandbox:" not in captured.err  # told to the callback instead of printed


def test_a_run_that_builds_the_image_emits_image_build_events(tmp_path, docker_client, sandbox_image):
    """The run turns its sandbox's build progress into events (here the sandbox builds an
    image for a kernel copy under a test tag: a real build, only the tag is not the default)."""
    from rlm_sandbox import RLM
    from rlm_sandbox.sandbox import DockerSandbox
    from rlm_sandbox.sandbox.image import build_image, ensure_base, kernel_dir
    from rlm_sandbox.testing import ScriptedModel
    from tests.conftest import TEST_SESSION, TEST_SESSION_LABEL

    kernel = tmp_path / "kernel"
    shutil.copytree(kernel_dir(), kernel, ignore=shutil.ignore_patterns("__pycache__"))
    (kernel / "marker.py").write_text(f"# {uuid.uuid4().hex}\n")
    base = ensure_base(docker_client, progress=False)  # present on any machine, fresh ones included
    tag = f"rlm-sandbox-test-progress:{uuid.uuid4().hex[:8]}"

    class BuildingSandbox(DockerSandbox):
        def _resolve_image(self) -> str:
            if self._image_tag is None:
                self._image_tag = build_image(tag, base, client=docker_client, kernel_root=kernel,
                                              progress=self.on_progress or True)
            return self._image_tag

    def factory(spec: Any, context: Any, host: Any) -> Any:
        return BuildingSandbox(context, client=docker_client, limits=spec.limits, host=host,
                               labels={TEST_SESSION_LABEL: TEST_SESSION})

    root = ScriptedModel(["```repl\nprint(len(context))\n```", "FINAL(ok)"])
    try:
        result = RLM(model=root.model, sandbox_factory=factory).run("q", "ctx")
    finally:
        docker_client.api.remove_image(tag, force=True)
    builds = [e for e in result.trajectory if e.event == "image_build"]
    assert result.status == "completed"
    assert builds and builds[-1].done and builds[-1].image == tag
    assert any(e.step == 1 for e in builds)


def test_demo_shows_the_live_display_on_a_terminal_and_leaves_the_verdict(sandbox_image):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("RLM_SANDBOX_")}
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(REPO), "TERM": "xterm-256color"})
    env.pop("NO_COLOR", None)
    code, output = in_pty(["demo"], env)
    assert code == 0, output
    assert "\x1b[" in output and "iteration 1 of 20" in output  # the live display was drawn
    screen = final_screen(output)
    assert screen[-1].startswith("expected $") and screen[-1].endswith("correct"), screen
    assert not any(" of 20 · " in line for line in screen), screen  # and then cleared
