"""``rlm-sandbox mcp`` refuses to start on a bad option, with one line naming it and exit code 2,
before it serves anything (an MCP client would otherwise see a server that fails every call)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("args, message", [
    (["--root", "/no/such/dir"], "--root /no/such/dir: does not exist"),
    (["--http", "70000"], "--http 70000: give a TCP port from 1 to 65535"),
    (["--max-sessions", "0"], "--max-sessions 0: give a number above 0"),
    (["--session-idle-s", "-1"], "--session-idle-s -1: give a number above 0"),
    (["--label", "novalue"], "--label takes KEY=VALUE"),
    (["--set", "sandbox=local"], "rlm-sandbox mcp runs only in containers"),
    (["--set", "max_iterations=zero"], "max_iterations=zero"),
])
def test_a_bad_option_stops_the_server_before_it_serves(tmp_path, args, message):
    env = {**os.environ, "PYTHONPATH": str(REPO), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    done = subprocess.run([sys.executable, "-m", "rlm_sandbox", "mcp", "--trace-dir", str(tmp_path), *args],
                          capture_output=True, text=True, env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert done.stdout == ""  # stdout is the protocol's: even a failed start writes nothing there
