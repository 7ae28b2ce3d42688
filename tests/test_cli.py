"""The rlm-sandbox command, run as a user would: a subprocess, real Docker, a model
server on 127.0.0.1 reached through litellm's openai/ provider."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

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
    assert events[0]["event"] == "start" and events[-1]["event"] == "final"


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
