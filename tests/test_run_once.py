"""One run path: a session's question and a one-shot run end the same way (the replay-miss
check and the masking of ``error`` live in ``core.run_once``, which both go through).

These run on the local sandbox (the same kernel and protocol as the container): what they
check is the run's ending, not the container."""

from __future__ import annotations

from typing import Any

import pytest

from rlm_sandbox import RLM
from rlm_sandbox.errors import LLMError
from rlm_sandbox.models import LLMClient
from rlm_sandbox.testing import ScriptedModel

SECRET = "s3cret-value-0123456789abcdef"
#: A cell that swallows its sub-call's failure and finishes: only the run's ending can fail it.
CATCHING = "```repl\ntry:\n    x = llm_query(context)\nexcept Exception as e:\n    x = 'caught'\nFINAL(x)\n```"


def fast() -> LLMClient:
    return LLMClient(backoff_initial_s=0.01, backoff_max_s=0.05, max_retries=0)


def test_a_session_under_replay_that_misses_a_request_is_an_error(tmp_path):
    with ScriptedModel([CATCHING], name="ro-root") as root, ScriptedModel(responder=lambda m: "seen") as sub:
        options = dict(model=root.model, sub_model=sub.model, sandbox="local", llm=fast())
        with RLM(**options, record=tmp_path / "t").session("x" * 400 + "first") as session:
            assert session.ask("q").answer == "seen"
    # Same length and start, so the root's prompt is the recorded one; the sub-call's is new.
    with RLM(**options, replay=tmp_path / "t").session("x" * 400 + "other") as session:
        result = session.ask("q")
    assert result.answer == "caught"  # the cell caught the miss...
    assert result.status == "error" and "not in the cassette" in result.error  # ...the question still fails
    assert "a sub-call" in result.error


class QuotingClient:
    """A user's own model client (``RLM(llm=...)``; a gateway's SDK, say) whose refusal quotes
    the key it was given: nothing of ours masked that message on its way to the result."""

    def __init__(self) -> None:
        self.inner = fast()

    async def acomplete(self, model: str, messages: list[dict], **call: Any) -> Any:
        raise LLMError(f"the gateway refused key {SECRET}", model=model, transient=False)

    def count_tokens(self, model: str, messages: list[dict] | None = None, *, text: str | None = None) -> int:
        return self.inner.count_tokens(model, messages, text=text)

    def price_of(self, model: str) -> Any:
        return self.inner.price_of(model)


def test_a_sessions_error_is_masked_like_a_runs(monkeypatch):
    monkeypatch.setenv("RLM_TEST_SERVICE_KEY", SECRET)  # a secret by its name
    rlm = RLM(model="scripted/unused", sandbox="local", llm=QuotingClient())
    one_shot = rlm.run("q", "ctx")
    with rlm.session("ctx") as session:
        asked = session.ask("q")
    for result in (one_shot, asked):
        assert result.status == "error" and "[secret RLM_TEST_SERVICE_KEY]" in result.error
        assert SECRET not in result.error


def test_a_bad_query_is_refused_the_same_way_by_a_run_and_a_session_saying_what_it_was():
    rlm = RLM(model="scripted/unused", sandbox="local")
    with pytest.raises(ValueError, match="query must be a non-empty string, not an empty or blank string"):
        rlm.run("  ")
    with rlm.session("ctx") as session, pytest.raises(ValueError, match="non-empty string, not a bytes"):
        session.ask(b"q")  # type: ignore[arg-type]  # wrong on purpose


def test_another_runs_replay_miss_does_not_fail_this_run(tmp_path):
    """Runs replaying through one client at once (serve copies one RLM per request) each fail by
    their own misses only. The other run's miss is made while this run is inside a cell (a host
    tool makes it on the shared client), so no timing decides the outcome."""
    import asyncio

    from rlm_sandbox.errors import UnrecordedRequest

    code = "```repl\nnote = other_run()\nx = llm_query('hi')\nFINAL(x)\n```"
    shared: list[Any] = []  # the replaying client, once there is one

    def other_run() -> str:
        """Another run's request on the same client, one the cassette lacks (while replaying)."""
        if not shared:
            return "recording"
        try:
            asyncio.run(shared[0].acomplete(sub.model, [{"role": "user", "content": "never recorded"}]))
        except UnrecordedRequest:
            return "the other run missed"
        return "served?"

    with ScriptedModel([code], name="ro-both-root") as root, ScriptedModel(responder=lambda m: "seen") as sub:
        options = dict(model=root.model, sub_model=sub.model, sandbox="local", llm=fast(),
                       tools={"other_run": other_run})
        assert RLM(**options, record=tmp_path / "t").run("q").ok
        replay = RLM(**options, replay=tmp_path / "t")
        shared.append(replay.llm)
        result = replay.run("q")
    assert result.answer == "seen"
    assert result.status == "completed", result.error  # before: "error", with the other run's miss
    assert len(replay.llm.misses) == 1  # the shared client still keeps every miss
