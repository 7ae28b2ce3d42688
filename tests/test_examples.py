"""The examples run as users run them: `python examples/NAME.py`, offline, in Docker.

Each runs as a subprocess with no LITELLM_MODEL, so it uses its scripted model through
litellm and real code in a real container, and must report a correct answer.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rlm_sandbox.sandbox.reaper import LABEL_HOST, LABEL_PID
from rlm_sandbox.testing import OpenAICompatibleServer

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.docker


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str
    pid: int


def run_example(name: str, *args: str, env_extra: dict[str, str] | None = None) -> Ran:
    env = {key: value for key, value in os.environ.items()
           if key not in ("LITELLM_MODEL", "LITELLM_SUB_MODEL") and not key.startswith("RLM_SANDBOX_")}
    env.update(env_extra or {})
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    command = [sys.executable, str(REPO / "examples" / f"{name}.py"), "--sandbox", "docker", *args]
    with subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          text=True) as proc:
        try:
            out, err = proc.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            pytest.fail(f"{name} took over 120 s\n--- stdout\n{out}\n--- stderr\n{err[-4000:]}")
    return Ran(proc.returncode, out, err, proc.pid)


def check_ran(ran: Ran, docker_client: Any) -> list[str]:
    """Exit code 0, the offline model line, the "correct: yes" line, and no container left."""
    detail = f"exit code {ran.returncode}\n--- stdout\n{ran.stdout}\n--- stderr\n{ran.stderr[-4000:]}"
    lines = ran.stdout.splitlines()
    assert lines and lines[0].startswith("model: scripted demo model (offline"), detail
    assert ran.returncode == 0, detail
    assert re.search(r"(?m)^correct: yes\b", ran.stdout), detail
    left = docker_client.api.containers(all=True, filters={"label": [
        f"{LABEL_PID}={ran.pid}", f"{LABEL_HOST}={socket.gethostname()}"]})
    assert not left, f"the example left {len(left)} sandbox container(s) behind"
    return lines


def test_simple_qa(sandbox_image: str, docker_client: Any) -> None:
    lines = check_ran(run_example("simple_qa"), docker_client)
    answer = next(line for line in lines if line.startswith("answer: "))
    expected = next(line for line in lines if line.startswith("expected: "))
    assert answer.split()[-1] == expected.split()[-1]


def test_long_document(sandbox_image: str, docker_client: Any) -> None:
    lines = check_ran(run_example("long_document"), docker_client)
    stats = next(line for line in lines if line.startswith("iterations: "))
    sub_calls = int(re.search(r"sub-calls: (\d+)", stats).group(1))
    assert sub_calls >= 10  # one per ~100,000-character chunk of a ~1.3 MB document


def test_offload_benchmark(sandbox_image: str, docker_client: Any) -> None:
    ran = run_example("offload_benchmark", "--quiet")
    lines = check_ran(ran, docker_client)
    rows = {}
    for line in lines:
        match = re.match(r"^(offload on|offload off)\s+([\d,]+)\s+([\d,]+)\s+([\d,]+)\s+(\d+)\s+(yes|NO)$", line)
        if match:
            rows[match.group(1)] = [int(g.replace(",", "")) for g in match.groups()[1:5]] + [match.group(6)]
    assert set(rows) == {"offload on", "offload off"}, ran.stdout
    on, off = rows["offload on"], rows["offload off"]
    assert on[0] < off[0], f"input tokens with offloading {on[0]} should be below {off[0]} without"
    assert on[1] < off[1] and on[2] < off[2], ran.stdout  # history chars, output shown
    assert on[4] == off[4] == "yes"


@pytest.mark.parametrize("variable", ["RLM_SANDBOX_MODEL", "LITELLM_MODEL"])
def test_a_real_model_is_named_like_for_the_cli(variable: str, sandbox_image: str) -> None:
    """RLM_SANDBOX_MODEL is the variable (as for `rlm-sandbox`); LITELLM_MODEL still works."""
    with OpenAICompatibleServer(lambda messages: "FINAL(0)") as server:
        ran = run_example("simple_qa", "--quiet", env_extra={
            variable: "openai/served-here", "RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test"})
        models = {request.body.get("model") for request in server.requests}
    assert ran.stdout.startswith(f"model: openai/served-here (sub-model: openai/served-here; from {variable})"), \
        ran.stdout + ran.stderr
    assert models == {"served-here"}
