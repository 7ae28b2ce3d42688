"""rlm_sandbox.testing on its own: the scripted provider as litellm users see it, and the
OpenAI-compatible test server."""

from __future__ import annotations

import asyncio
import gc
import json
import os
import urllib.error
import urllib.request
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm

from rlm_sandbox.models import LLMClient
from rlm_sandbox.testing import (
    OpenAICompatibleServer,
    Reply,
    ScriptedModel,
    estimate_tokens,
    scripted_cost,
)

pytestmark = pytest.mark.filterwarnings("ignore:.*ReadOnly:UserWarning")

USER = [{"role": "user", "content": "hello there"}]


def test_plain_litellm_calls_reach_the_scripted_model() -> None:
    with ScriptedModel(["sync", "async"]) as model:
        assert model.model == f"scripted/{model.name}"
        response = litellm.completion(model=model.model, messages=USER)
        assert response.choices[0].message.content == "sync"
        response = asyncio.run(litellm.acompletion(model=model.model, messages=USER))
        assert response.choices[0].message.content == "async"
        assert model.call_count == 2
        assert model.calls == [USER, USER]


def test_usage_none_survives_litellm_response_processing() -> None:
    with ScriptedModel([Reply("x", input_tokens=None, output_tokens=None)]) as model:
        response = litellm.completion(model=model.model, messages=USER)
    assert getattr(response, "usage", None) is None


def test_default_and_partial_token_counts() -> None:
    with ScriptedModel(["abcdefgh", Reply("y", input_tokens=5)]) as model:
        first = litellm.completion(model=model.model, messages=USER).usage
        second = litellm.completion(model=model.model, messages=USER).usage
    assert (first.prompt_tokens, first.completion_tokens) == (estimate_tokens("hello there"), 3)
    assert (second.prompt_tokens, second.completion_tokens) == (5, estimate_tokens("y"))


def test_names_are_unique_and_explicit_names_collide_loudly() -> None:
    a, b = ScriptedModel(["a"]), ScriptedModel(["b"])
    assert a.model != b.model
    with ScriptedModel(["x"], name="fixed-name"), pytest.raises(ValueError, match="already exists"):
        ScriptedModel(["y"], name="fixed-name")
    ScriptedModel(["z"], name="fixed-name").close()  # free again after close
    a.close(), b.close()


def test_closed_or_collected_models_fail_clearly() -> None:
    model = ScriptedModel(["never"])
    name = model.model
    model.close()
    with pytest.raises(litellm.BadRequestError, match="closed or garbage-collected"):
        litellm.completion(model=name, messages=USER)

    name = ScriptedModel(["lost"]).model
    gc.collect()
    with pytest.raises(litellm.BadRequestError, match="no ScriptedModel named"):
        litellm.completion(model=name, messages=USER)


def test_needs_replies_or_responder() -> None:
    with pytest.raises(ValueError):
        ScriptedModel()


def test_responder_answers_after_scripted_replies() -> None:
    with ScriptedModel(["first"], responder=lambda msgs: "then this") as model:
        texts = [litellm.completion(model=model.model, messages=USER).choices[0].message.content
                 for _ in range(3)]
    assert texts == ["first", "then this", "then this"]


def test_provider_comes_back_if_the_map_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(litellm, "custom_provider_map", [])
    with ScriptedModel(["still here"]) as model:
        response = litellm.completion(model=model.model, messages=USER)
    assert response.choices[0].message.content == "still here"


def test_scripted_cost_prices_the_model() -> None:
    with ScriptedModel([Reply("x", input_tokens=1000, output_tokens=500)]) as model:
        scripted_cost(model.model, input_per_token=1e-6, output_per_token=4e-6)
        response = litellm.completion(model=model.model, messages=USER)
        assert litellm.completion_cost(completion_response=response) == pytest.approx(0.003)


def _post(url: str, body: Any) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_server_speaks_chat_completions_and_errors() -> None:
    replies = iter([Reply("plain"), Reply(error=litellm.RateLimitError(
        message="slow down", llm_provider="openai", model="m"))])
    with OpenAICompatibleServer(lambda messages: next(replies)) as server:
        status, body = _post(server.url + "/chat/completions", {"model": "m", "messages": USER})
        assert status == 200
        assert body["object"] == "chat.completion"
        assert body["choices"][0]["message"] == {"role": "assistant", "content": "plain"}
        usage = body["usage"]
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]

        status, body = _post(server.url + "/chat/completions", {"model": "m", "messages": USER})
        assert status == 429 and "slow down" in body["error"]["message"]

        assert _post(server.url + "/embeddings", {"input": "x"})[0] == 404
        assert _post(server.url + "/chat/completions", b"{not json")[0] == 400
        assert _post(server.url + "/chat/completions", {"messages": USER, "stream": True})[0] == 400
        assert len(server.requests) == 4  # the unparseable body is not recorded


def test_server_usage_none_reaches_the_client_as_zero_tokens() -> None:
    with OpenAICompatibleServer(lambda m: Reply("no usage", input_tokens=None, output_tokens=None)) as server:
        client = LLMClient(completion_kwargs={"api_base": server.url, "api_key": "sk-test"})
        result = client.complete("openai/test-model", USER)
    assert result.text == "no usage"
    assert result.cost_usd is None  # openai/test-model has no price: unknown, never $0 (issue 7)
    # litellm may fill in usage itself when the provider sends none; it must be an int.
    assert isinstance(result.input_tokens, int) and isinstance(result.output_tokens, int)
