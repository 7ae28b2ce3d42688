"""The rlm-sandbox command, run as a user would: a subprocess, real Docker, a model
server on 127.0.0.1 reached through litellm's openai/ provider."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from rlm_sandbox.sandbox.reaper import LABEL_HOST, LABEL_PID
from rlm_sandbox.events import read_events
from rlm_sandbox.testing import OpenAICompatibleServer, Reply

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict[str, str] | None = None, stdin: str | None = None) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "RLM_SANDBOX_MODEL"}
    full_env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(REPO), **(env or {})})
    return subprocess.run([sys.executable, "-m", "rlm_sandbox", *args], capture_output=True, text=True,
                          env=full_env, input=stdin, timeout=300, cwd=REPO)


def test_run_prints_the_answer(tmp_path, sandbox_image):
    context = tmp_path / "notes.txt"
    context.write_text("red green blue green")
    script = iter(["```repl\ncounts = {w: context.split().count(w) for w in set(context.split())}\n"
                   "top = max(counts, key=counts.get)\n```\nFINAL_VAR(top)"])
    with OpenAICompatibleServer(lambda messages: Reply(next(script), input_tokens=10, output_tokens=2)) as server:
        done = cli("run", "--query", "Most common word?", "--context-file", str(context),
                   "--model", "openai/test-model", env={"RLM_SANDBOX_API_BASE": server.url,
                                                         "RLM_SANDBOX_API_KEY": "sk-test"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "green"
    assert "status=completed" in done.stderr


def test_run_json_output_and_trace_file(tmp_path, sandbox_image):
    context = tmp_path / "data.json"
    context.write_text(json.dumps({"values": [1, 2, 3]}))
    trace = tmp_path / "trace.jsonl"
    with OpenAICompatibleServer(lambda m: "```repl\nFINAL(sum(context['values']))\n```") as server:
        done = cli("run", "-q", "Sum?", "-f", str(context), "-m", "openai/x", "--json", "--trace", str(trace),
                   env={"RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test"})
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["answer"] == "6" and result["status"] == "completed"
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert events[0]["event"] == "run_start" and events[-1]["event"] == "final"


def test_run_with_a_missing_context_file_says_so(tmp_path):
    done = cli("run", "-q", "x", "-f", str(tmp_path / "nope.txt"), "-m", "openai/x")
    assert done.returncode == 2 and "does not exist" in done.stderr


def test_run_with_an_unreachable_model_reports_an_error_status(tmp_path, sandbox_image):
    context = tmp_path / "c.txt"
    context.write_text("x")
    done = cli("run", "-q", "x", "-f", str(context), "-m", "openai/x",
               env={"RLM_SANDBOX_API_BASE": "http://127.0.0.1:9/v1", "RLM_SANDBOX_API_KEY": "sk-test",
                    "RLM_SANDBOX_MAX_RETRIES": "0"})
    assert done.returncode == 4  # a model or provider error (issue 7, item 14)
    assert "status=error" in done.stderr


def test_demo_runs_offline_with_the_scripted_model_and_says_so(sandbox_image):
    done = cli("demo", "--quiet")
    assert done.returncode == 0, done.stderr
    assert "SCRIPTED demo model" in done.stderr and ": correct" in done.stderr


def test_gc_and_image_show(sandbox_image):
    assert cli("image", "show").stdout.strip() == sandbox_image
    done = cli("gc")
    assert done.returncode == 0 and "orphaned sandbox container" in done.stdout


def test_doctor_reports_docker_and_image(sandbox_image):
    done = cli("doctor")
    assert done.returncode == 0, done.stdout
    assert "Docker" in done.stdout and sandbox_image in done.stdout


def test_run_accepts_any_setting_with_set(tmp_path, sandbox_image):
    context = tmp_path / "c.txt"
    context.write_text("abc")
    with OpenAICompatibleServer(lambda m: "```repl\nprint(1)\n```") as server:
        done = cli("run", "-q", "x", "-f", str(context), "-m", "openai/x", "--set", "max_iterations=1",
                   "--set", "offload_threshold=50", env={"RLM_SANDBOX_API_BASE": server.url,
                                                          "RLM_SANDBOX_API_KEY": "sk-test"})
    assert done.returncode == 3 and "status=max_iterations" in done.stderr
    assert "Output longer than 50 characters is not shown whole" in server.requests[0].messages[0]["content"]


@pytest.mark.parametrize("setting, message", [("max_iteratons=3", "unknown option"), ("noequals", "NAME=VALUE"),
                                              ("max_iterations=zero", "max_iterations")])
def test_bad_set_values_are_reported(tmp_path, setting, message):
    context = tmp_path / "c.txt"
    context.write_text("abc")
    done = cli("run", "-q", "x", "-f", str(context), "-m", "openai/x", "--set", setting)
    assert done.returncode == 2 and message in done.stderr


def test_gc_images_removes_only_stale_kernel_images(docker_client, sandbox_image):
    stale = "rlm-sandbox:kernel-000000000000"
    docker_client.api.tag(sandbox_image, "rlm-sandbox", "kernel-000000000000")
    done = cli("gc", "--images")
    assert done.returncode == 0 and stale in done.stdout
    assert not docker_client.api.images(name=stale) and docker_client.api.images(name=sandbox_image)


# -- issue 7: -v at concurrency, the trace as the run goes, Ctrl-C, exit codes, hints -------------

_HEADER = re.compile(r"^(  )*\[rlm +\d+\.\d\ds\] \S")
_BLOCK = re.compile(r"^(  )*    \| ")


def test_verbose_lines_never_interleave_at_real_concurrency(tmp_path, sandbox_image):
    """64 sub-calls with multi-line answers, 32 at once: every line of -v is one whole event
    line or a line of an indented block, and each sub-call has its own line."""
    context = tmp_path / "c.txt"
    context.write_text("x")
    script = iter(["Asking every item.\n```repl\nanswers = llm_query_batched([f'item {i}' for i in range(64)])\n"
                   "print(len(answers))\n```", "FINAL(done)"])

    def responder(messages: list[dict]) -> str:
        if messages[0]["role"] == "system":
            return next(script)
        prompt = messages[-1]["content"]
        return f"first line of {prompt}\nsecond line of {prompt}\n" + "filler " * 10

    with OpenAICompatibleServer(responder) as server:
        done = cli("run", "-q", "x", "-f", str(context), "-m", "openai/x", "-v", "--set", "max_concurrency=32",
                   env={"RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test"})
    assert done.returncode == 0, done.stderr
    progress = [line for line in done.stderr.splitlines()
                if not line.startswith(("status=", "rlm-sandbox: building", "rlm-sandbox: built"))]
    stray = [line for line in progress if not (_HEADER.match(line) or _BLOCK.match(line))]
    assert not stray, stray
    sub_calls = [line for line in progress if "] sub-call " in line]
    assert len(sub_calls) == 64
    for i in range(64):
        assert sum(f": item {i} -> first line of item {i}\\nsecond line of item {i}\\n" in line
                   for line in sub_calls) == 1


def _wait_for(predicate: Any, timeout: float = 90.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_ctrl_c_keeps_the_trajectory_written_so_far_and_exits_130(tmp_path, docker_client, sandbox_image):
    context = tmp_path / "c.txt"
    context.write_text("x")
    trace = tmp_path / "run.jsonl"
    release = threading.Event()
    replies = iter(["```repl\nprint('step one')\n```"])

    def responder(messages: list[dict]) -> str:
        reply = next(replies, None)
        if reply is None:  # the second turn never comes back while the test runs
            release.wait(120)
            return "FINAL(too late)"
        return reply

    with OpenAICompatibleServer(responder) as server:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "RLM_SANDBOX_MODEL"}
        env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(REPO),
                    "RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test"})
        proc = subprocess.Popen([sys.executable, "-m", "rlm_sandbox", "run", "-q", "x", "-f", str(context),
                                 "-m", "openai/x", "--trace", str(trace)], env=env, cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # The run is still going (its second model call hangs): the trace must already hold the cell.
            written = _wait_for(lambda: trace.exists() and '"event":"cell"' in trace.read_text())
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=60)
        finally:
            release.set()
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert written, "the trajectory was not written as the run went"
    assert proc.returncode == 130, err
    assert "rlm-sandbox: interrupted" in err and "Traceback" not in err
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    kinds = [event["event"] for event in events]
    assert kinds[0] == "run_start" and "cell" in kinds and kinds[-1] == "run_interrupted"
    loaded = read_events(trace)  # the reader takes the partial file back as typed events
    assert loaded.partial and [e.event for e in loaded.events] == kinds
    assert not docker_client.api.containers(all=True, filters={"label": [
        f"{LABEL_PID}={proc.pid}", f"{LABEL_HOST}={socket.gethostname()}"]})


def test_the_answer_is_printed_even_when_writing_the_trace_fails(tmp_path, sandbox_image):
    context = tmp_path / "c.txt"
    context.write_text("x")
    with OpenAICompatibleServer(lambda messages: "FINAL(the answer)") as server:
        done = cli("run", "-q", "x", "-f", str(context), "-m", "openai/x", "--trace", "/dev/full",
                   env={"RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "the answer"
    assert "the trajectory in /dev/full is incomplete" in done.stderr and "Traceback" not in done.stderr


def test_set_verbose_true_is_one_more_setting(tmp_path, sandbox_image):
    context = tmp_path / "c.txt"
    context.write_text("x")
    with OpenAICompatibleServer(lambda messages: "FINAL(ok)") as server:
        done = cli("run", "-q", "x", "-f", str(context), "-m", "openai/x", "--set", "verbose=true",
                   env={"RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test"})
    assert done.returncode == 0, done.stderr
    assert "] -- iteration 1" in done.stderr


def test_an_incomplete_run_exits_3_and_says_its_answer_is_not_final(tmp_path, sandbox_image):
    context = tmp_path / "c.txt"
    context.write_text("x")
    with OpenAICompatibleServer(lambda messages: "```repl\nprint(1)\n```") as server:
        done = cli("run", "-q", "x", "-f", str(context), "-m", "openai/x", "--max-iterations", "1",
                   env={"RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test"})
    assert done.returncode == 3, done.stderr
    assert "the run did not complete (status=max_iterations)" in done.stderr
    assert "not a FINAL answer" in done.stderr


def test_demo_after_a_provider_error_gives_no_verdict(sandbox_image):
    done = cli("demo", "--quiet", "--model", "openai/x",
               env={"RLM_SANDBOX_API_BASE": "http://127.0.0.1:9/v1", "RLM_SANDBOX_API_KEY": "sk-test",
                    "RLM_SANDBOX_MAX_RETRIES": "0"})
    assert done.returncode == 4, done.stderr
    assert "no verdict, the run did not complete (status=error)" in done.stderr
    assert "WRONG" not in done.stderr and ": correct" not in done.stderr


def test_image_build_from_the_build_cache_says_so(docker_client, sandbox_image):
    """Building on a base under a new name: the layers are in Docker's cache (built once here
    if they were not), so the second build takes no time and must not claim a build."""
    base = f"rlm-sandbox-test-base:{uuid.uuid4().hex[:8]}"
    from rlm_sandbox.sandbox.image import ensure_base

    base_image = ensure_base(docker_client, progress=False)  # present on any machine, fresh ones included
    docker_client.api.tag(base_image, *base.split(":"))
    built = None
    try:
        first = cli("image", "build", "--base", base)
        assert first.returncode == 0, first.stderr
        built = first.stdout.strip()
        docker_client.api.remove_image(built)
        second = cli("image", "build", "--base", base)
        assert second.returncode == 0 and second.stdout.strip() == built, second.stderr
        assert "build cache" in second.stderr and "one-time" not in second.stderr
        assert not re.search(r"built \S+ in 0 s", second.stderr)
    finally:
        for tag in (built, base):
            if tag and docker_client.api.images(name=tag):
                docker_client.api.remove_image(tag)
