"""A real ``rlm-sandbox serve`` process for the server's tests, and the scripted upstream it calls.

The upstream is :class:`rlm_sandbox.testing.OpenAICompatibleServer` (real HTTP on 127.0.0.1),
reached by the server through litellm's own OpenAI path (``openai/test-model``). Its
responder plays a root model whose behaviour the query picks, and a sub-model.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

UPSTREAM_KEY = "sk-upstream-secret-0123456789"
ROOT = "openai/test-model"

#: Queries that make the scripted root model do something other than answer 42.
SLEEP = "please sleep in a cell"
NEVER = "never finish"


def responder(messages: list[dict]) -> str:
    """Root: read the context and ask a sub-model in one cell, then FINAL(42). Sub-calls: 'sub-answer'."""
    last = messages[-1].get("content")
    if isinstance(last, str) and last.startswith("SUBCALL:"):
        return "sub-answer"
    first_user = next(str(m.get("content")) for m in messages if m.get("role") == "user")
    turns = sum(1 for m in messages if m.get("role") == "assistant")
    if SLEEP in first_user:
        return "```repl\nimport time\nprint('sleeping')\ntime.sleep(300)\n```"
    if NEVER in first_user:
        return f"```repl\nprint('turn {turns}')\n```"
    if turns == 0:
        return "```repl\nprint(context)\nreply = llm_query('SUBCALL: what is it?')\nprint(reply)\n```"
    return "FINAL(42)"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def command() -> list[str]:
    return [str(Path(sys.executable).with_name("rlm-sandbox"))]


class ServeProcess:
    """``rlm-sandbox serve`` on 127.0.0.1 and a free port, against ``upstream_url``."""

    def __init__(self, upstream_url: str, *args: str, tmp: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.stderr_path = tmp / f"serve-{self.port}.stderr"
        self.stdout_path = tmp / f"serve-{self.port}.stdout"
        cmd = [*command(), "serve", "--port", str(self.port), "--set", f"model={ROOT}",
               "--set", f"api_base={upstream_url}", "--set", f"api_key={UPSTREAM_KEY}", *args]
        self.process = subprocess.Popen(cmd, stdout=self.stdout_path.open("w"), stderr=self.stderr_path.open("w"),
                                        env={**os.environ, **(env or {})}, cwd=tmp)
        self._wait_until_up()

    def _wait_until_up(self, timeout_s: float = 180) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}:\n{self.stderr()}")
            try:
                httpx.get(f"{self.url}/models", timeout=2)
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.close()
        raise AssertionError(f"serve did not answer within {timeout_s} s:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def containers(self) -> list[Any]:
        """The containers this server owns now (labelled with its pid)."""
        from rlm_sandbox.sandbox.client import docker_client
        from rlm_sandbox.sandbox.reaper import LABEL_PID

        return docker_client().api.containers(all=True, filters={"label": f"{LABEL_PID}={self.process.pid}"})

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        leaked = self.containers()
        assert not leaked, f"serve left {len(leaked)} container(s) behind"
