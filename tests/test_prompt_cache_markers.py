"""Issue 21, part B: cache marks through litellm, for the providers that need them.

With ``prompt_cache="auto"`` a root request to Claude carries litellm's
``cache_control_injection_points`` for its first and last message, which litellm turns into
Anthropic's ``cache_control`` blocks on the wire (checked at a local Anthropic-style endpoint);
"off", an OpenAI-style provider (it caches by itself) and sub-calls get none, and a user's own
injection points win."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rlm_sandbox import RLM
from rlm_sandbox.models.prompt_cache import needs_marks
from rlm_sandbox.testing import OpenAICompatibleServer
from tests.anthropic_server import AnthropicServer

CLAUDE = "anthropic/claude-sonnet-4-20250514"
EPHEMERAL = {"type": "ephemeral"}


def root_then_sub(body: dict[str, Any]) -> str:
    """A root model that makes one sub-call, then finishes; sub-calls (no system prompt) answer "hi"."""
    if not body.get("system") and not any("You answer a query" in json.dumps(m) for m in body["messages"][:1]):
        return "hi"
    turns = sum(1 for m in body["messages"] if m["role"] == "assistant")
    return "```repl\nprint(llm_query('Say hi'))\n```" if turns == 0 else "FINAL(done)"


def claude_run(sandbox_factory: Any, server: AnthropicServer, **options: Any) -> Any:
    rlm = RLM(model=CLAUDE, api_base=server.url, api_key="sk-ant-test", sandbox_factory=sandbox_factory,
              max_retries=0, **options)
    return rlm.run("How long is it?", "some text " * 20)


def marks(value: Any) -> int:
    return json.dumps(value).count('"cache_control"')


def last_block(message: dict[str, Any]) -> dict[str, Any]:
    content = message["content"]
    return content[-1] if isinstance(content, list) else {"text": content}


@pytest.mark.docker
@pytest.mark.loop
def test_auto_marks_the_system_prompt_and_the_last_message_of_each_root_request(sandbox_factory):
    with AnthropicServer(root_then_sub) as server:
        result = claude_run(sandbox_factory, server)
        requests, usage = server.requests, server.usage
    assert result.status == "completed" and result.answer == "done", result.error
    roots = [(body, used) for body, used in zip(requests, usage, strict=True) if body.get("system")]
    subs = [body for body in requests if not body.get("system")]
    assert len(roots) == 2 and len(subs) == 1
    for body, _ in roots:
        assert body["system"][-1]["cache_control"] == EPHEMERAL  # the static system prompt
        assert last_block(body["messages"][-1]).get("cache_control") == EPHEMERAL  # what the next request repeats
        assert marks(body) == 2 and marks(body["messages"][:-1]) == 0  # two breakpoints, of the four allowed
    assert marks(subs[0]) == 0  # a one-message sub-call: nothing to reuse
    first, second = roots[0][1], roots[1][1]
    assert first["cache_creation_input_tokens"] >= 1024 and second["cache_read_input_tokens"] >= 1024


@pytest.mark.docker
@pytest.mark.loop
def test_a_folded_system_prompt_is_marked_in_the_first_user_message(sandbox_factory):
    def answer(body: dict[str, Any]) -> str:
        turns = sum(1 for m in body["messages"] if m["role"] == "assistant")
        return "```repl\nprint(len(context))\n```" if turns == 0 else "FINAL(done)"

    with AnthropicServer(answer) as server:
        result = claude_run(sandbox_factory, server, supports_system_message=False)
        requests, usage = server.requests, server.usage
    assert result.status == "completed" and len(requests) == 2
    first, second = requests
    assert "system" not in first and marks(first) == 1  # one message: the first and the last at once
    assert last_block(second["messages"][0])["cache_control"] == EPHEMERAL and marks(second) == 2
    assert usage[1]["cache_read_input_tokens"] >= 1024  # the instructions at its start were cached


@pytest.mark.docker
@pytest.mark.loop
def test_off_marks_nothing(sandbox_factory):
    with AnthropicServer(root_then_sub) as server:
        result = claude_run(sandbox_factory, server, prompt_cache="off")
        requests = server.requests
    assert result.status == "completed" and len(requests) == 3
    assert all(marks(body) == 0 for body in requests)


@pytest.mark.docker
@pytest.mark.loop
def test_a_users_own_injection_points_win(sandbox_factory):
    own = {"cache_control_injection_points": [{"location": "message", "role": "system"}]}
    with AnthropicServer(root_then_sub) as server:
        result = claude_run(sandbox_factory, server, prompt_cache="auto", model_options=own)
        roots = [body for body in server.requests if body.get("system")]
    assert result.status == "completed" and len(roots) == 2
    for body in roots:
        assert body["system"][-1]["cache_control"] == EPHEMERAL and marks(body["messages"]) == 0


@pytest.mark.docker
@pytest.mark.loop
def test_an_openai_style_provider_gets_no_marks(sandbox_factory):
    def answer(messages: list[dict]) -> str:
        if messages[0]["role"] != "system":
            return "hi"
        return "```repl\nprint(llm_query('Say hi'))\n```" if len(messages) == 2 else "FINAL(done)"

    with OpenAICompatibleServer(answer) as server:
        rlm = RLM(model="openai/gpt-4o", api_base=server.url, api_key="sk-test-0123456789abcdef", prompt_cache="auto",
                  sandbox_factory=sandbox_factory, max_retries=0)
        result = rlm.run("How long is it?", "some text")
        bodies = [request.body for request in server.requests]
    assert result.status == "completed" and len(bodies) == 3
    assert all(marks(body) == 0 and "cache_control_injection_points" not in body for body in bodies)


@pytest.mark.parametrize("model, marked", [
    ("anthropic/claude-3-5-haiku-20241022", True), ("claude-sonnet-4-20250514", True),
    ("bedrock/anthropic.claude-3-5-sonnet-20241022-v2:0", True), ("vertex_ai/claude-3-5-sonnet-v2@20241022", True),
    ("bedrock/us.amazon.nova-pro-v1:0", True), ("bedrock/meta.llama3-70b-instruct-v1:0", False),
    ("gemini/gemini-2.5-flash", False), ("vertex_ai/gemini-2.5-pro", False), ("gpt-4o", False),
    ("deepseek/deepseek-chat", False), ("no-such-provider/model", False),
])
def test_which_providers_need_marks(model, marked):
    assert needs_marks(model) is marked
