"""Faults injected into whole runs: a provider that fails in every way it can, and a
container killed from outside, with real Docker and a real HTTP endpoint on 127.0.0.1.

Each run must end in bounded time, with a clear status and error, and leave no container.
(Faults to a sandbox alone, and signals to a host process, are in test_faults_sandbox.py.)
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable

import pytest

from rlm_sandbox import RLM
from rlm_sandbox.models import LLMClient
from rlm_sandbox.testing import OpenAICompatibleServer, Reply
from tests.waiting import wait_for_event

pytestmark = pytest.mark.docker

FINAL = "```repl\nFINAL('done')\n```"


class HTTPStatusError(Exception):
    """What the test server turns into an HTTP error with this status."""

    def __init__(self, status_code: int, message: str = "injected") -> None:
        super().__init__(message)
        self.status_code = status_code


def server_rlm(server: OpenAICompatibleServer, sandbox_factory: Any, *, max_retries: int = 2,
               request_timeout_s: float = 30.0, **options: Any) -> RLM:
    call = {"api_base": server.url, "api_key": "sk-test-fault-injection"}
    return RLM(model="openai/test-model", sandbox_factory=sandbox_factory, max_iterations=4,
               llm=LLMClient(max_retries=max_retries, backoff_initial_s=0.01, backoff_max_s=0.05,
                             timeout_s=request_timeout_s, completion_kwargs=call), **options)


def scripted(*replies: Any) -> Callable[[list[dict]], Any]:
    """A responder answering from ``replies`` in order (the last one repeats)."""
    lock, calls = threading.Lock(), [0]

    def respond(messages: list[dict]) -> Any:
        with lock:
            index = min(calls[0], len(replies) - 1)
            calls[0] += 1
        return replies[index]

    return respond


def our_containers(docker_client: Any) -> list[dict]:
    from tests.conftest import TEST_SESSION, TEST_SESSION_LABEL

    return docker_client.api.containers(all=True, filters={"label": f"{TEST_SESSION_LABEL}={TEST_SESSION}"})


def finished_within(seconds: float, function: Callable[[], Any]) -> Any:
    started = time.monotonic()
    value = function()
    assert time.monotonic() - started < seconds, f"took {time.monotonic() - started:.1f} s"
    return value


# -- the provider --------------------------------------------------------------------------

def test_a_rate_limit_then_recovery_is_retried_and_the_run_completes(sandbox_factory, docker_client):
    limited = Reply(error=HTTPStatusError(429, "slow down"))
    with OpenAICompatibleServer(scripted(limited, limited, FINAL)) as server:
        result = finished_within(60, lambda: server_rlm(server, sandbox_factory).run("q", "ctx"))
        assert len(server.requests) == 3  # two refusals, then the answer
    assert (result.status, result.answer, result.answer_from) == ("completed", "done", "final")
    assert not our_containers(docker_client)


def test_a_provider_failing_with_500_every_time_ends_the_run_with_an_error(sandbox_factory, docker_client):
    with OpenAICompatibleServer(scripted(Reply(error=HTTPStatusError(500, "the server broke")))) as server:
        result = finished_within(60, lambda: server_rlm(server, sandbox_factory, max_retries=2).run("q", "ctx"))
        assert len(server.requests) == 3  # the first attempt and two retries, then it gives up
    assert result.status == "error" and result.answer_from == "none"
    assert "3 attempt(s)" in result.error and "500" in result.error
    assert not our_containers(docker_client)


def test_a_malformed_json_body_is_a_provider_error(sandbox_factory, docker_client):
    with OpenAICompatibleServer(scripted(Reply(raw_body=b'{"id": "x", "choices": [ {'))) as server:
        result = finished_within(60, lambda: server_rlm(server, sandbox_factory, max_retries=1).run("q", "ctx"))
        assert len(server.requests) >= 1
    assert result.status == "error" and result.error
    assert result.answer == "" and result.answer_from == "none"
    assert not our_containers(docker_client)


def test_a_reply_with_no_choices_is_retried_then_reported(sandbox_factory, docker_client):
    with OpenAICompatibleServer(scripted(Reply(no_choices=True))) as server:
        result = finished_within(60, lambda: server_rlm(server, sandbox_factory, max_retries=1).run("q", "ctx"))
        assert len(server.requests) == 2
    assert result.status == "error" and "no choices" in result.error
    assert result.iterations == 1  # not nudged on to max_iterations
    assert not our_containers(docker_client)


def test_a_provider_that_never_answers_is_bounded_by_request_timeout(sandbox_factory, docker_client):
    hang = Reply("never sent", delay_s=120)
    with OpenAICompatibleServer(scripted(hang)) as server:
        result = finished_within(30, lambda: server_rlm(server, sandbox_factory, max_retries=1,
                                                        request_timeout_s=1.0).run("q", "ctx"))
    assert result.status == "error" and "request_timeout_s" in result.error
    assert not our_containers(docker_client)


def test_a_provider_that_recovers_mid_run_keeps_the_run_going(sandbox_factory, docker_client):
    """A 503 on the second turn, then answers: the retry is invisible to the model."""
    first = "```repl\nx = 41 + 1\nprint(x)\n```"
    with OpenAICompatibleServer(scripted(first, Reply(error=HTTPStatusError(503)), "```repl\nFINAL(x)\n```")) as server:
        result = finished_within(60, lambda: server_rlm(server, sandbox_factory).run("q", "ctx"))
    assert (result.status, result.answer) == ("completed", "42")
    assert not our_containers(docker_client)


# -- the sandbox, mid-run ------------------------------------------------------------------

def test_a_container_killed_from_outside_mid_run(sandbox_factory, docker_client):
    """The model's cell sleeps; `docker kill` hits its container. The cell reports the death,
    the sandbox restarts with its context, the model is told its variables are gone, and it
    can still finish; the replacement container is removed at the end."""
    made: list[Any] = []

    def recording_factory(*args: Any) -> Any:
        sandbox = sandbox_factory(*args)
        made.append(sandbox)
        return sandbox

    sleeper = "```repl\nimport time\nstarted = True\ncell_started()\ntime.sleep(60)\n```"
    after = "```repl\nFINAL(str(len(context)) + ' ' + str('started' in globals()))\n```"
    cell_started = threading.Event()  # the barrier: the cell calls back to the host, then sleeps

    def kill_when_sleeping() -> None:
        wait_for_event(cell_started, what="the cell starting")
        docker_client.api.kill(made[0].container_id)

    with OpenAICompatibleServer(scripted(sleeper, after)) as server:
        killer = threading.Thread(target=kill_when_sleeping)
        killer.start()
        rlm = server_rlm(server, recording_factory, tools={"cell_started": cell_started.set})
        result = finished_within(60, lambda: rlm.run("q", "ctx"))
        killer.join()
        told = server.requests[1].messages[-1]["content"]
    assert (result.status, result.answer) == ("completed", "3 False")  # context back, variables gone
    assert "KernelDied" in told and "variables were lost" in told
    cells = [e for e in result.trajectory if e["event"] == "cell"]
    assert cells[0]["restarted"] is True
    assert not our_containers(docker_client)
