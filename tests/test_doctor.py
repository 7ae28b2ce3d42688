"""``rlm-sandbox doctor`` as a real subprocess: on a healthy machine every check passes (a
real sandbox runs a cell, and the limits are read from inside the container); a broken piece
fails with the one command that fixes it, and a non-zero exit code; ``--json``."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from rlm_sandbox.testing import OpenAICompatibleServer

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parent.parent


def doctor(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("RLM_SANDBOX_")}
    full.update({"PYTHONPATH": str(REPO), "NO_COLOR": "1", **(env or {})})
    return subprocess.run([sys.executable, "-m", "rlm_sandbox", "doctor", *args], capture_output=True, text=True,
                          env=full, cwd=cwd, timeout=180)


def checks_of(done: subprocess.CompletedProcess) -> dict[str, dict]:
    return {check["name"]: check for check in json.loads(done.stdout)["checks"]}


def test_a_healthy_machine_passes_every_check_with_a_real_sandbox(sandbox_image, tmp_path):
    done = doctor("--json", env={"RLM_SANDBOX_MEMORY": "300m", "RLM_SANDBOX_PIDS": "77"}, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(done.stdout)
    assert report["ok"] is True
    checks = checks_of(done)
    assert {"docker", "runc", "image", "sandbox", "limits", "provider_keys"} <= set(checks)
    assert checks["docker"]["status"] == "ok" and "DOCKER_HOST not set" in checks["docker"]["detail"]
    assert sandbox_image in checks["image"]["detail"]
    assert checks["sandbox"]["status"] == "ok" and "socket transport" in checks["sandbox"]["detail"]
    # read from the container's cgroup: the settings' limits, not the defaults
    assert checks["limits"]["status"] == "ok"
    assert "memory 314572800 (want 314572800), pids 77 (want 77)" in checks["limits"]["detail"]
    assert checks["provider_keys"] == {"name": "provider_keys", "status": "warn", "detail": "provider keys: none",
                                       "fix": "export OPENAI_API_KEY=...  # or put it (or another provider's key) "
                                              "in ./.env; the demo runs without"}
    assert all(check["fix"] is None for check in checks.values() if check["status"] == "ok")


def test_stdio_transport_is_checked_when_chosen(sandbox_image, tmp_path):
    done = doctor(env={"RLM_SANDBOX_TRANSPORT": "stdio"}, cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    assert "ok   a sandbox started and ran a cell (stdio transport, runtime runc)" in done.stdout


def test_docker_unreachable_fails_with_the_command_that_fixes_it(tmp_path):
    host = f"unix://{tmp_path}/no-docker.sock"
    done = doctor(env={"DOCKER_HOST": host}, cwd=tmp_path)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    failed = [n for n, line in enumerate(lines) if line.startswith("FAIL")]
    assert len(failed) == 1 and f"Docker daemon (DOCKER_HOST={host})" in lines[failed[0]]
    assert lines[failed[0] + 1].strip() == "-> unset DOCKER_HOST  # or start the daemon it names"
    as_json = doctor("--json", env={"DOCKER_HOST": host}, cwd=tmp_path)
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["ok"] is False
    assert checks_of(as_json)["docker"]["fix"] == "unset DOCKER_HOST  # or start the daemon it names"


def test_a_missing_image_fails_and_the_sandbox_check_is_skipped(sandbox_image, tmp_path):
    done = doctor("--json", env={"RLM_SANDBOX_IMAGE": "rlm-sandbox:kernel-doesnotexist"}, cwd=tmp_path)
    assert done.returncode == 1
    checks = checks_of(done)
    assert checks["image"]["status"] == "fail" and checks["image"]["fix"].startswith(
        "docker pull rlm-sandbox:kernel-doesnotexist")
    assert checks["sandbox"]["status"] == "skipped" and checks["limits"]["status"] == "skipped"


def test_api_base_is_checked_when_set(sandbox_image, tmp_path):
    with OpenAICompatibleServer(lambda messages: "hello") as server:
        done = doctor("--json", env={"RLM_SANDBOX_API_BASE": server.url}, cwd=tmp_path)
    assert done.returncode == 0, done.stdout
    assert checks_of(done)["api_base"]["status"] == "ok"
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    done = doctor(env={"RLM_SANDBOX_API_BASE": closed}, cwd=tmp_path)
    assert done.returncode == 1
    assert f"FAIL api_base {closed}: unreachable" in done.stdout
    assert f"-> start the server that should answer at {closed}, or unset RLM_SANDBOX_API_BASE" in done.stdout


def test_bad_settings_fail_with_where_to_look(tmp_path):
    done = doctor(env={"RLM_SANDBOX_PIDS": "many"}, cwd=tmp_path)
    assert done.returncode == 1
    assert "FAIL settings:" in done.stdout and "pids" in done.stdout and "rlm-sandbox settings" in done.stdout
