"""LLMClient through litellm's real code path: the scripted provider, and one real HTTP
endpoint on 127.0.0.1. No test reaches beyond the loopback interface (see `no_network`)."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import httpx
import litellm

from rlm_sandbox.errors import (
    LLMAuthenticationError,
    LLMContextWindowExceeded,
    LLMEmptyReply,
    LLMError,
    LLMModelNotFound,
    LLMUnavailable,
    RLMSandboxError,
)
from rlm_sandbox.models import Completion, LLMClient, Price, is_transient
from rlm_sandbox.testing import (
    OpenAICompatibleServer,
    Reply,
    ScriptedModel,
    estimate_tokens,
    scripted_cost,
)

# litellm's pydantic models warn about ReadOnly TypedDicts when first built: not ours.
pytestmark = pytest.mark.filterwarnings("ignore:.*ReadOnly:UserWarning")

USER = [{"role": "user", "content": "What is 6 times 7?"}]


def fast_client(**kwargs: Any) -> LLMClient:
    return LLMClient(backoff_initial_s=0.01, backoff_max_s=0.05, **kwargs)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fail any connection or name lookup that leaves this machine."""
    loopback = {"127.0.0.1", "::1", "localhost", None}

    def guarded_getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in loopback and not str(host).startswith("127."):
            raise AssertionError(f"a test tried to resolve {host!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def check(address: Any) -> None:
        if isinstance(address, tuple) and address and not (
                str(address[0]).startswith("127.") or address[0] in loopback):
            raise AssertionError(f"a test tried to connect to {address!r}")

    def guarded_connect(self: socket.socket, address: Any) -> Any:
        check(address)
        return real_connect(self, address)

    def guarded_connect_ex(self: socket.socket, address: Any) -> Any:
        check(address)
        return real_connect_ex(self, address)

    real_getaddrinfo = socket.getaddrinfo
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    monkeypatch.setattr(socket, "getaddrinfo", guarded_getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", guarded_connect_ex)
    yield


def rate_limit() -> Exception:
    return litellm.RateLimitError(message="slow down", llm_provider="scripted", model="m")


def unavailable() -> Exception:
    return litellm.ServiceUnavailableError(message="overloaded", llm_provider="scripted", model="m")


# --- answers ---------------------------------------------------------------------------

def test_completion_returns_text_tokens_and_cost() -> None:
    with ScriptedModel([Reply("42", input_tokens=100, output_tokens=10)]) as model:
        scripted_cost(model.model, input_per_token=0.001, output_per_token=0.002)
        result = fast_client().complete(model.model, USER)
    assert isinstance(result, Completion)
    assert result.text == "42"
    assert result.model == model.model
    assert (result.input_tokens, result.output_tokens, result.total_tokens) == (100, 10, 110)
    assert result.cost_usd == pytest.approx(100 * 0.001 + 10 * 0.002)
    assert result.retries == 0
    assert result.duration_s >= 0


def test_unpriced_model_has_an_unknown_cost_not_zero() -> None:
    """issue 7 (6): a model litellm has no price for costs "unknown" (None), never $0."""
    with ScriptedModel(["forty-two"]) as model:
        result = fast_client().complete(model.model, USER)
    assert result.cost_usd is None
    assert result.input_tokens == estimate_tokens(USER[0]["content"])
    assert result.output_tokens == estimate_tokens("forty-two")


def test_a_custom_price_prices_an_unknown_model() -> None:
    """litellm's custom pricing (input/output cost per token) is passed with the call."""
    with ScriptedModel([Reply("42", input_tokens=1000, output_tokens=10)]) as model:
        assert LLMClient.price_of(model.model) is None
        result = fast_client().complete(model.model, USER, price=Price(1e-6, 3e-6))
    assert result.cost_usd == pytest.approx(1000 * 1e-6 + 10 * 3e-6)


def test_usage_none_counts_tokens_locally_and_prices_them() -> None:
    """A provider that reports no usage is not free: litellm's token counter counts both sides."""
    with ScriptedModel([Reply("hi there", input_tokens=None, output_tokens=None)]) as model:
        scripted_cost(model.model, 0.5, 0.5)
        result = fast_client().complete(model.model, USER)
    assert result.text == "hi there"
    assert result.input_tokens == litellm.token_counter(messages=USER) > 0
    assert result.output_tokens == litellm.token_counter(text="hi there") > 0
    assert result.cost_usd == pytest.approx(0.5 * (result.input_tokens + result.output_tokens))


# --- empty replies (issue 7, item 5) ------------------------------------------------------

def test_content_none_is_an_empty_reply_retried_then_an_error() -> None:
    with ScriptedModel([Reply(None, input_tokens=50, output_tokens=0)] * 3 + ["never asked"]) as model:
        with pytest.raises(LLMEmptyReply) as caught:
            fast_client(max_retries=2).complete(model.model, USER)
        assert model.call_count == 3  # retried as transient
    error = caught.value
    assert isinstance(error, LLMError) and error.transient is True and error.attempts == 3
    assert "empty reply" in str(error) and "content was null, with no tool calls" in str(error)
    assert "finish_reason='stop'" in str(error)
    assert error.input_tokens == 150  # the empty answers were paid for, and say so


def test_an_empty_reply_then_an_answer_recovers_and_counts_both() -> None:
    with ScriptedModel([Reply(None, input_tokens=40, output_tokens=0), Reply("fine", 40, 2)]) as model:
        result = asyncio.run(fast_client().acomplete(model.model, USER))
    assert (result.text, result.retries, result.input_tokens, result.output_tokens) == ("fine", 1, 80, 2)


def test_empty_choices_over_http_is_an_error_naming_what_came_back() -> None:
    with OpenAICompatibleServer(lambda messages: Reply(no_choices=True)) as server:
        client = fast_client(max_retries=1, completion_kwargs={"api_base": server.url, "api_key": "sk-test"})
        with pytest.raises(LLMEmptyReply) as caught:
            client.complete("openai/test-model", USER)
        assert len(server.requests) == 2
    assert "the response had no choices" in str(caught.value)


def test_responder_sees_the_prompt() -> None:
    seen: list[list[dict]] = []

    def responder(messages: list[dict]) -> str:
        seen.append(messages)
        return "echo: " + messages[-1]["content"]

    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "ping"}]
    with ScriptedModel(responder=responder) as model:
        result = fast_client().complete(model.model, messages)
        assert model.calls == [messages]
    assert result.text == "echo: ping"
    assert seen == [messages]


def test_replies_are_used_in_order_then_run_out_without_retry() -> None:
    with ScriptedModel(["one", lambda msgs: f"two ({len(msgs)} msg)"], name="ordered-test") as model:
        client = fast_client()
        assert client.complete(model.model, USER).text == "one"
        assert client.complete(model.model, USER).text == "two (1 msg)"
        with pytest.raises(LLMError) as caught:
            client.complete(model.model, USER)
        assert model.call_count == 3  # the failed call was not retried
    assert "ScriptedModel ordered-test ran out of replies after 2 calls" in str(caught.value)
    assert caught.value.transient is False


# --- retries ---------------------------------------------------------------------------

def test_transient_error_is_retried_then_succeeds() -> None:
    with ScriptedModel([rate_limit(), "recovered"]) as model:
        result = fast_client().complete(model.model, USER)
        assert model.call_count == 2
    assert result.text == "recovered"
    assert result.retries == 1


def test_retry_after_hint_is_honoured_within_the_cap() -> None:
    hinted = litellm.RateLimitError(message="wait", llm_provider="scripted", model="m",
                                    headers={"retry-after": "0.02"})
    with ScriptedModel([hinted, "after the wait"]) as model:
        result = fast_client().complete(model.model, USER)
    assert (result.text, result.retries) == ("after the wait", 1)


def test_permanent_error_is_not_retried_and_says_what_to_do() -> None:
    auth = litellm.AuthenticationError(message="invalid key", llm_provider="openai", model="m")
    with ScriptedModel([auth, "never reached"]) as model:
        with pytest.raises(LLMError) as caught:
            fast_client().complete(model.model, USER)
        assert model.call_count == 1
    error = caught.value
    assert isinstance(error, LLMAuthenticationError) and isinstance(error, RLMSandboxError)
    assert error.transient is False
    assert error.model == model.model
    assert "API_KEY" in str(error) and "environment" in str(error)
    assert error.__cause__ is auth


def test_retries_exhausted_raise_transient_error() -> None:
    with ScriptedModel([unavailable()] * 3 + ["too late"]) as model:
        with pytest.raises(LLMError) as caught:
            fast_client(max_retries=2).complete(model.model, USER)
        assert model.call_count == 3
    error = caught.value
    assert isinstance(error, LLMUnavailable)
    assert error.transient is True and error.attempts == 3
    assert "kept failing after 3 attempt" in str(error)
    assert isinstance(error.__cause__, litellm.ServiceUnavailableError)


def test_handler_bug_is_wrapped_never_raw() -> None:
    """litellm maps an arbitrary exception from a provider to APIConnectionError."""
    with ScriptedModel([ValueError("boom")] * 2) as model, pytest.raises(LLMError) as caught:
        fast_client(max_retries=1).complete(model.model, USER)
    assert "boom" in str(caught.value)
    assert caught.value.__cause__ is not None


def test_context_window_exceeded_is_permanent() -> None:
    too_long = litellm.ContextWindowExceededError(message="too long", model="m", llm_provider="openai")
    with ScriptedModel([too_long]) as model, pytest.raises(LLMContextWindowExceeded) as caught:
        fast_client().complete(model.model, USER)
    assert "context window" in str(caught.value)


def test_unknown_provider_names_an_example_model() -> None:
    with pytest.raises(LLMModelNotFound) as caught:
        fast_client().complete("no-such-provider-xyz/some-model", USER)
    assert "openai/gpt-4o-mini" in str(caught.value)
    assert caught.value.transient is False


def _response(status: int) -> httpx.Response:
    return httpx.Response(status, request=httpx.Request("POST", "http://127.0.0.1/v1"))


@pytest.mark.parametrize("make, transient", [
    (lambda: litellm.RateLimitError(message="x", llm_provider="p", model="m"), True),
    (lambda: litellm.Timeout(message="x", model="m", llm_provider="p"), True),
    (lambda: litellm.APIConnectionError(message="x", llm_provider="p", model="m"), True),
    (lambda: litellm.InternalServerError(message="x", llm_provider="p", model="m"), True),
    (lambda: litellm.ServiceUnavailableError(message="x", llm_provider="p", model="m"), True),
    (lambda: litellm.BadGatewayError(message="x", llm_provider="p", model="m"), True),
    (lambda: litellm.APIError(status_code=503, message="x", llm_provider="p", model="m"), True),
    (lambda: litellm.APIError(status_code=400, message="x", llm_provider="p", model="m"), False),
    (lambda: litellm.AuthenticationError(message="x", llm_provider="p", model="m"), False),
    (lambda: litellm.NotFoundError(message="x", model="m", llm_provider="p"), False),
    (lambda: litellm.BadRequestError(message="x", model="m", llm_provider="p"), False),
    (lambda: litellm.PermissionDeniedError(message="x", llm_provider="p", model="m",
                                           response=_response(403)), False),
    (lambda: litellm.ContextWindowExceededError(message="x", model="m", llm_provider="p"), False),
    (lambda: litellm.InternalServerError(message="Missing credentials. Please pass an `api_key`",
                                         llm_provider="p", model="m"), False),
    (lambda: ValueError("not from litellm"), False),
])
def test_transient_classification(make: Any, transient: bool) -> None:
    assert is_transient(make()) is transient


# --- async and concurrency -------------------------------------------------------------

def test_async_twin_answers_and_retries() -> None:
    with ScriptedModel([rate_limit(), Reply("async answer", delay_s=0.01)]) as model:
        result = asyncio.run(fast_client().acomplete(model.model, USER))
        assert model.call_count == 2
    assert (result.text, result.retries) == ("async answer", 1)


def test_async_twin_wraps_permanent_errors() -> None:
    auth = litellm.AuthenticationError(message="bad", llm_provider="openai", model="m")
    with ScriptedModel([auth]) as model, pytest.raises(LLMAuthenticationError):
        asyncio.run(fast_client().acomplete(model.model, USER))


def test_async_calls_run_concurrently_in_one_loop() -> None:
    with ScriptedModel(responder=lambda msgs: Reply("ok:" + msgs[0]["content"], delay_s=0.05)) as model:
        client = fast_client()

        async def many() -> list[Completion]:
            return await asyncio.gather(*(client.acomplete(model.model, [{"role": "user", "content": str(i)}])
                                          for i in range(8)))

        results = asyncio.run(many())
    assert [r.text for r in results] == [f"ok:{i}" for i in range(8)]


def test_sixteen_threads_all_get_their_answers() -> None:
    barrier = threading.Barrier(16, timeout=30)

    def responder(messages: list[dict]) -> Reply:
        return Reply("answer to " + messages[-1]["content"], delay_s=0.01)

    with ScriptedModel(responder=responder) as model:
        client = fast_client()

        def call(i: int) -> str:
            barrier.wait()
            return client.complete(model.model, [{"role": "user", "content": f"q{i}"}]).text

        with ThreadPoolExecutor(max_workers=16) as pool:
            answers = list(pool.map(call, range(16)))
        assert model.call_count == 16
        assert sorted(m[-1]["content"] for m in model.calls) == sorted(f"q{i}" for i in range(16))
    assert answers == [f"answer to q{i}" for i in range(16)]


def test_scripted_replies_are_handed_out_once_across_threads() -> None:
    with ScriptedModel([str(i) for i in range(32)]) as model:
        client = fast_client()
        with ThreadPoolExecutor(max_workers=16) as pool:
            texts = list(pool.map(lambda _: client.complete(model.model, USER).text, range(32)))
    assert sorted(texts, key=int) == [str(i) for i in range(32)]


# --- over real HTTP ----------------------------------------------------------------------

def test_real_http_round_trip_to_openai_compatible_server() -> None:
    def responder(messages: list[dict]) -> Reply:
        return Reply("HTTP says: " + messages[-1]["content"], input_tokens=11, output_tokens=4)

    with OpenAICompatibleServer(responder) as server:
        assert server.url.startswith("http://127.0.0.1:")
        client = LLMClient(completion_kwargs={"api_base": server.url, "api_key": "sk-test"})
        result = client.complete("openai/test-model", USER)
        async_result = asyncio.run(client.acomplete("openai/test-model", USER))
        requests = server.requests
    assert result.text == async_result.text == "HTTP says: What is 6 times 7?"
    assert (result.input_tokens, result.output_tokens) == (11, 4)
    assert len(requests) == 2
    first = requests[0]
    assert first.path.endswith("/chat/completions")
    assert first.messages == USER
    assert first.body["model"] == "test-model"
    assert {k.lower(): v for k, v in first.headers.items()}["authorization"] == "Bearer sk-test"


def test_http_5xx_is_retried_by_us_alone() -> None:
    """One 503 then success: exactly two requests, so neither litellm nor the OpenAI SDK
    retried on its own."""
    failures = [litellm.ServiceUnavailableError(message="busy", llm_provider="openai", model="m")]

    def responder(messages: list[dict]) -> Reply:
        return Reply(error=failures.pop()) if failures else Reply("fine")

    with OpenAICompatibleServer(responder) as server:
        client = fast_client(completion_kwargs={"api_base": server.url, "api_key": "sk-test"})
        result = client.complete("openai/test-model", USER)
        assert len(server.requests) == 2
    assert (result.text, result.retries) == ("fine", 1)


def test_http_401_is_not_retried() -> None:
    auth = litellm.AuthenticationError(message="Incorrect API key", llm_provider="openai", model="m")
    with OpenAICompatibleServer(lambda messages: Reply(error=auth)) as server:
        client = fast_client(completion_kwargs={"api_base": server.url, "api_key": "sk-wrong"})
        with pytest.raises(LLMAuthenticationError) as caught:
            client.complete("openai/test-model", USER)
        assert len(server.requests) == 1
    assert caught.value.status_code == 401


def test_missing_api_key_is_an_authentication_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAICompatibleServer(lambda messages: "unreachable") as server:
        client = fast_client(completion_kwargs={"api_base": server.url})
        with pytest.raises(LLMAuthenticationError) as caught:
            client.complete("openai/test-model", USER)
        assert server.requests == []
    assert "OPENAI_API_KEY" in str(caught.value)
    assert caught.value.transient is False


# --- hints that point the right way (issue 7, item 15) -------------------------------------

def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_key_given_as_api_key_says_so_and_never_shows_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    key = "sk-given-abcdef1234567890"
    auth = litellm.AuthenticationError(message=f"Incorrect API key provided: {key}", llm_provider="openai",
                                       model="m")
    with OpenAICompatibleServer(lambda messages: Reply(error=auth)) as server:
        client = fast_client(completion_kwargs={"api_base": server.url, "api_key": key})
        with pytest.raises(LLMAuthenticationError) as caught:
            client.complete("openai/test-model", USER)
    message = str(caught.value)
    assert "refused the key given as api_key" in message and "HTTP 401" in message
    assert server.url in message  # check the key belongs to this api_base
    assert "OPENAI_API_KEY" not in message and "completion_kwargs" not in message
    assert key not in message and "abcdef1234567890" not in message


def test_a_refused_key_from_the_environment_names_the_variable_not_the_value(
        monkeypatch: pytest.MonkeyPatch) -> None:
    key = "sk-from-env-0987654321fedcba"
    monkeypatch.setenv("OPENAI_API_KEY", key)
    auth = litellm.AuthenticationError(message=f"bad key {key}", llm_provider="openai", model="m")
    with OpenAICompatibleServer(lambda messages: Reply(error=auth)) as server:
        with pytest.raises(LLMAuthenticationError) as caught:
            fast_client(completion_kwargs={"api_base": server.url}).complete("openai/test-model", USER)
    message = str(caught.value)
    assert "refused the key in OPENAI_API_KEY" in message and "--set api_key=" in message
    assert key not in message


def test_a_missing_key_names_every_way_to_give_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with OpenAICompatibleServer(lambda messages: "unreachable") as server:
        with pytest.raises(LLMAuthenticationError) as caught:
            fast_client(completion_kwargs={"api_base": server.url}).complete("openai/test-model", USER)
    message = str(caught.value)
    assert "no API key" in message and "OPENAI_API_KEY" in message
    assert "--set api_key=" in message and "RLM_SANDBOX_API_KEY" in message
    assert "completion_kwargs" not in message


def test_connection_refused_is_retried_once_and_names_the_api_base() -> None:
    base = f"http://127.0.0.1:{_free_port()}/v1"  # nothing listens there
    client = fast_client(max_retries=4, completion_kwargs={"api_base": base, "api_key": "sk-test"})
    with pytest.raises(LLMUnavailable) as caught:
        client.complete("openai/test-model", USER)
    error = caught.value
    assert error.attempts == 2  # CONNECT_RETRIES = 1, not max_retries = 4
    assert f"could not connect to {base} (connection refused)" in str(error)
    assert "api_base" in str(error) and "lower the concurrency" not in str(error)


def test_an_unknown_host_is_reported_as_such(monkeypatch: pytest.MonkeyPatch) -> None:
    """The resolver is told to fail for one made-up name, so nothing leaves the machine."""
    real = socket.getaddrinfo

    def resolver(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "llm.nowhere.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    client = fast_client(completion_kwargs={"api_base": "http://llm.nowhere.invalid/v1", "api_key": "sk-test"})
    with pytest.raises(LLMUnavailable) as caught:
        asyncio.run(client.acomplete("openai/test-model", USER))
    assert "could not connect to http://llm.nowhere.invalid/v1 (host name not found)" in str(caught.value)
    assert caught.value.attempts == 2
