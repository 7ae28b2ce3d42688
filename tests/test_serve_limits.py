"""`rlm-sandbox serve`'s limits as a real process: keys (401, no open bind), the queue (429 with
Retry-After), and a client that leaves mid-run (its container removed, its trace ended with
``run_interrupted``)."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import openai
import pytest

from rlm_sandbox.testing import OpenAICompatibleServer
from serve_process import ROOT, SLEEP, UPSTREAM_KEY, ServeProcess, command, responder

pytestmark = pytest.mark.docker

MODEL = f"rlm/{ROOT}"
SERVER_KEY = "server-key-for-tests-9f8e7d6c"


@pytest.fixture(scope="module")
def upstream() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer(responder) as server:
        yield server


def sleeping() -> list[dict[str, Any]]:
    return [{"role": "user", "content": SLEEP}]


def wait_for(condition: Any, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout_s} s: {what}")


def test_a_non_loopback_address_without_a_key_is_refused_before_listening(tmp_path: Path):
    done = subprocess.run([*command(), "serve", "--host", "0.0.0.0", "--port", "1"], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 2
    assert "--api-key" in done.stderr and "0.0.0.0" in done.stderr


def test_a_missing_or_wrong_key_is_a_401_and_the_key_is_never_shown(upstream: OpenAICompatibleServer,
                                                                    sandbox_image: str, tmp_path: Path):
    (tmp_path / "traces").mkdir()
    served = ServeProcess(upstream.url, "--pool", "0", "--trace-dir", str(tmp_path / "traces"), tmp=tmp_path,
                          env={"RLM_SANDBOX_SERVER_KEY": SERVER_KEY})
    try:
        for key, code in ((None, "missing_api_key"), ("wrong-key-123456", "invalid_api_key")):
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            reply = httpx.get(f"{served.url}/models", headers=headers, timeout=30)
            assert reply.status_code == 401 and reply.json()["error"]["code"] == code
        wrong = openai.OpenAI(base_url=served.url, api_key="wrong-key-123456", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}])
        right = openai.OpenAI(base_url=served.url, api_key=SERVER_KEY, max_retries=0, timeout=120)
        reply = right.chat.completions.create(model=MODEL, messages=[{"role": "system", "content": "ctx"},
                                                                     {"role": "user", "content": "q"}])
        assert reply.choices[0].message.content == "42"
        trace = (tmp_path / "traces" / f"{reply.id}.jsonl").read_text()
    finally:
        served.close()
    for text in (trace, served.stderr(), served.stdout()):
        assert SERVER_KEY not in text and UPSTREAM_KEY not in text
    assert "ignoring RLM_SANDBOX_SERVER_KEY" not in served.stderr()  # it is read, not an unknown setting


@pytest.fixture()
def one_at_a_time(upstream: OpenAICompatibleServer, sandbox_image: str, tmp_path: Path) -> Iterator[ServeProcess]:
    (tmp_path / "traces").mkdir()
    served = ServeProcess(upstream.url, "--max-concurrent", "1", "--max-queue", "0", "--pool", "0",
                          "--max-body-mb", "1", "--trace-dir", str(tmp_path / "traces"), tmp=tmp_path)
    yield served
    served.close()


def test_beyond_the_queue_a_request_gets_a_429_with_retry_after(one_at_a_time: ServeProcess):
    client = openai.OpenAI(base_url=one_at_a_time.url, api_key="x", max_retries=0, timeout=120)
    with httpx.stream("POST", f"{one_at_a_time.url}/chat/completions", timeout=120,
                      json={"model": MODEL, "stream": True, "messages": sleeping()}) as running:
        assert running.status_code == 200
        wait_for(lambda: one_at_a_time.containers(), 60, "the first run's container started")
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "q"}])
        assert int(caught.value.response.headers["retry-after"]) >= 1
        assert caught.value.body["code"] == "server_busy"
    # the first client left: its run ends (its slot is free once its cleanup is over), and the
    # server takes requests again
    wait_for(lambda: not one_at_a_time.containers(), 30, "the abandoned run's container removed")
    answers: list[str] = []

    def answered() -> bool:
        try:
            reply = client.chat.completions.create(model=MODEL, messages=[{"role": "system", "content": "c"},
                                                                          {"role": "user", "content": "q"}])
        except openai.RateLimitError:
            return False
        answers.append(reply.choices[0].message.content or "")
        return True

    wait_for(answered, 30, "a request accepted after the abandoned run ended")
    assert answers == ["42"]


def test_a_body_over_the_limit_is_a_413_before_it_is_read_whole(one_at_a_time: ServeProcess):
    big = "x" * (2 * 1024 * 1024)
    reply = httpx.post(f"{one_at_a_time.url}/chat/completions", timeout=60,
                       json={"model": MODEL, "messages": [{"role": "system", "content": big},
                                                          {"role": "user", "content": "q"}]})
    assert reply.status_code == 413
    assert reply.json()["error"]["code"] == "body_too_large" and "--max-body-mb" in reply.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds as the body arrives
        yield b'{"model": "rlm", "messages": [{"role": "user", "content": "'
        for _ in range(40):
            yield b"y" * 65536
        yield b'"}]}'

    reply = httpx.post(f"{one_at_a_time.url}/chat/completions", content=chunks(), timeout=60,
                       headers={"Content-Type": "application/json"})
    assert reply.status_code == 413


def send_and_hold(port: int, body: dict[str, Any]) -> socket.socket:
    """A raw HTTP request whose connection stays open until the caller closes it (a client
    waiting for a non-streamed answer, which sends no headers before the run ends)."""
    data = json.dumps(body).encode()
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 + f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
    return sock


@pytest.mark.parametrize("stream", [True, False])
def test_a_client_that_leaves_mid_run_stops_it(one_at_a_time: ServeProcess, tmp_path: Path, stream: bool):
    traces = tmp_path / "traces"
    body = {"model": MODEL, "stream": stream, "messages": sleeping()}
    sock = send_and_hold(one_at_a_time.port, body)
    try:
        wait_for(lambda: any('"event":"model_reply"' in p.read_text() for p in traces.glob("*.jsonl")), 60,
                 "the root model asked for the sleeping cell")
        wait_for(lambda: one_at_a_time.containers(), 60, "the run's container is there")
        time.sleep(1)  # the cell is sleeping now
        if stream:
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    finally:
        sock.close()  # the client leaves mid-run
    wait_for(lambda: not one_at_a_time.containers(), 20, "the container removed after the client left")
    [trace] = list(traces.glob("*.jsonl"))
    wait_for(lambda: '"run_interrupted"' in trace.read_text(), 20, "the trace ends with run_interrupted")
    events = [json.loads(line) for line in trace.read_text().splitlines()]
    assert events[-1]["event"] == "run_interrupted"
    assert not any(event["event"] == "final" for event in events)
