"""``rlm-sandbox mcp`` as MCP clients use it: the server started as a subprocess by the official
SDK's own stdio client (and once over streamable HTTP), real Docker, and the scripted model
behind a real OpenAI-compatible socket (the server is another process, so the model must be
reached over the network, as `tests/test_cli.py` does)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import pytest

pytest.importorskip("mcp", reason="the mcp extra is not installed: pip install -e '.[mcp]'")

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from rlm_sandbox.testing import OpenAICompatibleServer, Reply
from tests.conftest import TEST_SESSION, TEST_SESSION_LABEL

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parent.parent
TEST_LABEL = "org.rlm-sandbox.test-mcp"


def _env(model_url: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and k != "RLM_SANDBOX_MODEL"}
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"})
    if model_url is not None:
        env.update({"RLM_SANDBOX_API_BASE": model_url, "RLM_SANDBOX_API_KEY": "sk-test"})
    return env


def _args(root: Path, traces: Path, mark: str, *extra: str) -> list[str]:
    return ["-m", "rlm_sandbox", "mcp", "--root", str(root), "--trace-dir", str(traces), "--model",
            "openai/test-model", "--label", f"{TEST_SESSION_LABEL}={TEST_SESSION}", "--label", f"{TEST_LABEL}={mark}",
            "--set", "max_retries=0", *extra]


class Client:
    """One SDK ClientSession plus what the server sent besides replies."""

    def __init__(self, session: ClientSession, stray: list[Any], logs: list[Any]) -> None:
        self.session, self.stray, self.logs = session, stray, logs

    async def call(self, tool: str, progress: list[tuple[float, float | None, str | None]] | None = None,
                   **arguments: Any) -> tuple[bool, Any]:
        """(is_error, structured result or the error's text)."""

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            if progress is not None:
                progress.append((value, total, message))

        result = await self.session.call_tool(tool, arguments, read_timeout_seconds=240,
                                              progress_callback=on_progress)
        text = "".join(getattr(part, "text", "") for part in result.content)
        if result.is_error:
            return True, text
        return False, result.structured_content if result.structured_content is not None else json.loads(text)


@asynccontextmanager
async def stdio_server(root: Path, traces: Path, mark: str, errlog: Any, *extra: str,
                       model_url: str | None = None) -> AsyncIterator[Client]:
    params = StdioServerParameters(command=sys.executable, args=_args(root, traces, mark, *extra),
                                   env=_env(model_url), cwd=str(REPO))
    stray: list[Any] = []
    logs: list[Any] = []

    async def on_message(message: Any) -> None:
        if isinstance(message, Exception):  # a line on stdout that is not a JSON-RPC message
            stray.append(message)

    async def on_log(params: Any) -> None:
        logs.append(params)

    async with stdio_client(params, errlog=errlog) as (read, write):
        async with ClientSession(read, write, message_handler=on_message, logging_callback=on_log) as session:
            await session.initialize()
            yield Client(session, stray, logs)


def containers(docker_client: Any, mark: str) -> list[dict]:
    return docker_client.api.containers(all=True, filters={"label": f"{TEST_LABEL}={mark}"})


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return condition()


@pytest.fixture
def workspace(tmp_path: Path) -> tuple[Path, Path, Any]:
    root = tmp_path / "root"
    root.mkdir()
    traces = tmp_path / "traces"
    errlog = open(tmp_path / "server-stderr.txt", "w+")  # noqa: SIM115 - closed after the yield
    yield root, traces, errlog
    errlog.close()


def test_lists_tools_and_answers_about_a_file_with_progress(workspace, sandbox_image, docker_client):
    root, traces, errlog = workspace
    (root / "notes.txt").write_text("alpha bravo charlie")
    script = iter(["```repl\nword = context.split()[1]\nprint(word)\n```",
                   "```repl\nFINAL(word.upper())\n```"])
    mark = uuid.uuid4().hex[:12]
    progress: list[tuple[float, float | None, str | None]] = []

    async def scenario() -> tuple[list[str], tuple[bool, Any], Client]:
        async with stdio_server(root, traces, mark, errlog, "--set", "verbose=true",
                                model_url=server.url) as client:
            tools = [tool.name for tool in (await client.session.list_tools()).tools]
            answer = await client.call("rlm_answer", progress, query="Which is the second word?",
                                       paths=["notes.txt"])
            return tools, answer, client

    with OpenAICompatibleServer(lambda messages: Reply(next(script), input_tokens=10, output_tokens=2)) as server:
        tools, (is_error, result), client = asyncio.run(scenario())

    assert sorted(tools) == ["python_run", "rlm_answer"]
    assert not is_error, result
    assert result["answer"] == "BRAVO"
    assert (result["status"], result["answer_from"], result["iterations"]) == ("completed", "final", 2)
    assert result["cost_usd"] == "unknown"  # openai/test-model has no price: unknown, never $0
    trace = Path(result["trace"])
    assert trace.parent == traces.resolve()
    events = [json.loads(line)["event"] for line in trace.read_text().splitlines()]
    assert events[0] == "run_start" and events[-1] == "final"
    # one progress notification per root iteration, in order
    assert [(p, total) for p, total, _ in progress] == [(1, 20), (2, 20)]
    assert all(message and message.startswith(f"iteration {int(p)} of 20") for p, _, message in progress)
    assert any("ended: completed" in str(log.data) for log in client.logs), client.logs
    # stdout held only protocol; the verbose run's lines went to stderr
    assert client.stray == []
    errlog.seek(0)
    assert "iteration" in errlog.read().lower()
    assert wait_for(lambda: not containers(docker_client, mark))


def test_a_call_the_client_cancels_stops_its_run(workspace, sandbox_image, docker_client):
    root, traces, errlog = workspace
    mark = uuid.uuid4().hex[:12]

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with stdio_server(root, traces, mark, errlog, model_url=server.url) as client:
            call = asyncio.create_task(client.call("rlm_answer", query="q", text="some text"))
            seen["started"] = await asyncio.to_thread(wait_for, lambda: bool(containers(docker_client, mark)), 120)
            await asyncio.sleep(1.0)  # the cell is sleeping in the container now
            call.cancel()
            try:
                await call
            except asyncio.CancelledError:
                pass
            seen["gone"] = await asyncio.to_thread(wait_for, lambda: not containers(docker_client, mark), 30)
            seen["after"] = await client.call("python_run", code="print('still serving')")
        return seen

    with OpenAICompatibleServer(lambda messages: "```repl\nimport time\ntime.sleep(60)\n```") as server:
        seen = asyncio.run(scenario())

    assert seen["started"], "the run's container never appeared"
    assert seen["gone"], "the cancelled run's container was still there 30 s later"
    assert seen["after"][1]["stdout"] == "still serving\n"
    (trace,) = traces.iterdir()
    events = [json.loads(line)["event"] for line in trace.read_text().splitlines()]
    assert events[-1] == "run_interrupted", events[-3:]


def test_paths_outside_the_root_and_costs_above_the_cap_are_refused(tmp_path, workspace, sandbox_image):
    root, traces, errlog = workspace
    secret = tmp_path / "secret.txt"
    secret.write_text("the secret")
    (root / "out-link.txt").symlink_to(secret)
    (root / "sub").mkdir()
    (root / "sub" / "fine.txt").write_text("fine")
    (root / "sub" / "escape").symlink_to(tmp_path)
    (root / "big.txt").write_text("x" * 2048)
    (root / "binary.dat").write_bytes(b"\xff\xfe\x00")
    mark = uuid.uuid4().hex[:12]

    async def scenario() -> dict[str, tuple[bool, Any]]:
        outcomes = {}
        async with stdio_server(root, traces, mark, errlog, "--max-cost-usd", "0.5", "--max-bytes", "1024",
                                model_url=server.url) as client:
            for name, paths in {"parent": ["../secret.txt"], "absolute": [str(secret)],
                                "symlink": ["out-link.txt"], "dir-symlink": ["sub"], "glob": ["sub/**/*"],
                                "missing": ["nope.txt"], "too-big": ["big.txt"], "binary": ["binary.dat"]}.items():
                outcomes[name] = await client.call("rlm_answer", query="q", paths=paths)
            outcomes["cost"] = await client.call("rlm_answer", query="q", text="t", max_cost_usd=5.0)
        return outcomes

    with OpenAICompatibleServer(lambda messages: "FINAL(read it)") as server:
        outcomes = asyncio.run(scenario())
        assert server.requests == []  # no run started: every call was refused before the model

    for name, (is_error, text) in outcomes.items():
        assert is_error, f"{name}: {text}"
        assert "the secret" not in text
    assert "'../secret.txt'" in outcomes["parent"][1] and "outside the root" in outcomes["parent"][1]
    assert repr(str(secret)) in outcomes["absolute"][1] and "outside the root" in outcomes["absolute"][1]
    assert "'out-link.txt'" in outcomes["symlink"][1] and "outside the root" in outcomes["symlink"][1]
    assert "escape" in outcomes["dir-symlink"][1] and "outside the root" in outcomes["dir-symlink"][1]
    assert "escape" in outcomes["glob"][1] and "outside the root" in outcomes["glob"][1]
    assert "'nope.txt'" in outcomes["missing"][1] and "does not exist" in outcomes["missing"][1]
    assert "'big.txt'" in outcomes["too-big"][1] and "1,024 bytes" in outcomes["too-big"][1]
    assert "'binary.dat'" in outcomes["binary"][1] and "not UTF-8" in outcomes["binary"][1]
    assert "above this server's cap of 0.5 USD" in outcomes["cost"][1]


def test_python_run_keeps_state_per_session_and_sessions_are_isolated(workspace, sandbox_image, docker_client):
    root, traces, errlog = workspace
    mark = uuid.uuid4().hex[:12]

    async def scenario() -> tuple[list[tuple[bool, Any]], Client, int]:
        async with stdio_server(root, traces, mark, errlog) as client:
            results = [await client.call("python_run", code="x = 41\nprint('set', flush=True)", session="a"),
                       await client.call("python_run", code="x += 1\nprint(x)\nimport sys; print('warn', "
                                                            "file=sys.stderr)", session="a"),
                       await client.call("python_run", code="print(x)", session="b"),
                       await client.call("python_run", code="y = 'default'"),
                       await client.call("python_run", code="print(y)", session="default"),
                       await client.call("python_run", code="print(1)", session="../etc"),
                       await client.call("python_run", code="print('\\x1b]0;owned\\x07\\x1b[2J done')", session="a")]
            live = len(containers(docker_client, mark))
            return results, client, live

    results, client, live = asyncio.run(scenario())
    set_x, add_x, other, default_set, default_get, bad_id, escapes = results
    assert set_x == (False, {"session": "a", "stdout": "set\n", "stderr": "", "error": None, "timed_out": False,
                             "notes": []})
    assert add_x[1]["stdout"] == "42\n" and add_x[1]["stderr"] == "warn\n"
    assert other[1]["session"] == "b" and "NameError" in other[1]["error"] and other[1]["stdout"] == ""
    assert default_set[1]["session"] == "default" and default_get[1]["stdout"] == "default\n"
    assert bad_id[0] and "'../etc'" in bad_id[1]
    assert escapes[1]["stdout"] == "\\x1b]0;owned\\x07\\x1b[2J done\n"  # shown, never interpreted by a client
    assert live == 3  # a, b and default, each its own container
    assert client.stray == []  # printed cells came back through the tool, never on the server's stdout
    assert wait_for(lambda: not containers(docker_client, mark))  # the server closed them all on its way out


def test_sessions_close_when_idle_and_the_oldest_idle_makes_room(workspace, sandbox_image, docker_client):
    root, traces, errlog = workspace
    mark = uuid.uuid4().hex[:12]

    async def scenario() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        async with stdio_server(root, traces, mark, errlog, "--max-sessions", "2", "--session-idle-s", "3") as client:
            await client.call("python_run", code="v = 'a'", session="a")
            await client.call("python_run", code="v = 'b'", session="b")
            await client.call("python_run", code="print(v)", session="b")  # b is now the most recently used
            await client.call("python_run", code="v = 'c'", session="c")  # a, the longest idle, makes room
            seen["b"] = await client.call("python_run", code="print(v)", session="b")
            seen["a"] = await client.call("python_run", code="print(v)", session="a")  # a fresh a: v is gone
            seen["live"] = len(containers(docker_client, mark))
            seen["idle"] = await asyncio.to_thread(wait_for, lambda: not containers(docker_client, mark), 30)
        return seen

    seen = asyncio.run(scenario())
    assert seen["b"][1]["stdout"] == "b\n"
    assert "NameError" in seen["a"][1]["error"]
    assert seen["live"] == 2
    assert seen["idle"], "idle sessions were not closed within 30 s of --session-idle-s 3"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_streamable_http_transport(workspace, sandbox_image, docker_client):
    root, traces, errlog = workspace
    mark = uuid.uuid4().hex[:12]
    port = _free_port()
    proc = subprocess.Popen([sys.executable, *_args(root, traces, mark, "--http", str(port))], env=_env(None),
                            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errlog)

    async def scenario() -> tuple[list[str], tuple[bool, Any]]:
        async with streamable_http_client(f"http://127.0.0.1:{port}/mcp") as (read, write, *_):
            async with ClientSession(read, write) as session:
                await session.initialize()
                tools = [tool.name for tool in (await session.list_tools()).tools]
                result = await Client(session, [], []).call("python_run", code="print(6 * 7)")
                return tools, result

    try:
        assert wait_for(lambda: _listening(port) or proc.poll() is not None, 60), "the HTTP server did not listen"
        assert proc.poll() is None, f"the server exited: {errlog.seek(0) or errlog.read()}"
        tools, (is_error, result) = asyncio.run(scenario())
        assert sorted(tools) == ["python_run", "rlm_answer"]
        assert not is_error and result["stdout"] == "42\n"
        assert len(containers(docker_client, mark)) == 1
    finally:
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    assert out == b""  # over HTTP, stdout carries nothing at all
    assert wait_for(lambda: not containers(docker_client, mark))


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_the_benchmark_runs(sandbox_image):
    """benchmarks/bench_mcp.py --smoke still works (its figures mean nothing; no timing is checked)."""
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_mcp.py"), "--smoke"], capture_output=True,
                          text=True, env=_env(None), timeout=300, cwd=REPO)
    assert done.returncode == 0, done.stderr
    figures = json.loads(done.stdout)
    assert {"spawn_to_initialized_s", "list_tools", "python_run_warm", "sandbox_exec_warm",
            "mcp_overhead_per_call_p50_ms"} <= set(figures)
