"""The test server's prompt cache behaves like a provider's, and litellm reads what it says.

Benchmarks and the cached-token accounting rest on it: a request repeating an earlier
request's prefix of at least the minimum is billed as cached (rounded down to 128 tokens),
a shorter or different prefix is not, and each model has its own cache."""

from __future__ import annotations

import litellm
import pytest

from rlm_sandbox.testing import OpenAICompatibleServer, PrefixCache, Reply, ScriptedModel

STATIC = "You answer questions. " * 400  # 8,800 characters: 2,200 tokens by the server's estimate


def _ask(server: OpenAICompatibleServer, messages: list[dict], model: str = "openai/cache-test") -> object:
    return litellm.completion(model=model, messages=messages, api_base=server.url, api_key="sk-test",
                              max_retries=0)


def test_a_repeated_prefix_is_billed_as_cached_through_litellm():
    with OpenAICompatibleServer(lambda messages: "ok", prefix_cache_min_tokens=1024) as server:
        first = _ask(server, [{"role": "system", "content": STATIC}, {"role": "user", "content": "task one"}])
        second = _ask(server, [{"role": "system", "content": STATIC}, {"role": "user", "content": "task two"}])
    assert first.usage.prompt_tokens_details.cached_tokens == 0
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached == 2176  # the shared 2,2xx tokens, rounded down to 128
    assert [u.cached_tokens for u in server.usage] == [0, 2176]
    assert server.usage[1].prompt_tokens == second.usage.prompt_tokens


def test_a_short_or_different_prefix_or_another_model_is_not_cached():
    cache = PrefixCache(1024)
    short = [{"role": "user", "content": "x" * 3000}]  # 750 tokens
    assert cache.read("m", short, 751) == 0
    assert cache.read("m", short, 751) == 0  # repeated, but below the minimum
    long = [{"role": "system", "content": STATIC}]
    assert cache.read("m", long, 2201) == 0
    assert cache.read("other", long, 2201) == 0  # each model its own cache
    assert cache.read("m", [{"role": "user", "content": STATIC}], 2201) == 0  # the role must repeat too
    assert cache.read("m", long, 2201) == 2176
    with pytest.raises(ValueError, match="prefix_cache_min_tokens"):
        PrefixCache(0)


def test_without_a_cache_the_server_says_nothing_of_one():
    with OpenAICompatibleServer(lambda messages: "ok") as server:
        for _ in range(2):
            reply = _ask(server, [{"role": "system", "content": STATIC}])
    details = reply.usage.prompt_tokens_details
    assert details is None or not details.cached_tokens
    assert [u.cached_tokens for u in server.usage] == [0, 0]


def test_a_scripted_reply_reports_its_cached_tokens_through_litellm():
    with ScriptedModel([Reply("hi", input_tokens=3000, output_tokens=5, cached_tokens=2048)]) as model:
        response = litellm.completion(model=model.model, messages=[{"role": "user", "content": "q"}])
    assert response.usage.prompt_tokens == 3000
    assert response.usage.prompt_tokens_details.cached_tokens == 2048


def test_a_scripted_price_charges_cached_tokens_at_the_input_price_unless_told_otherwise():
    """scripted_cost once registered cached tokens at $0, so a cached scripted call looked free."""
    from rlm_sandbox.models.litellm_client import LLMClient
    from rlm_sandbox.testing import scripted_cost

    with ScriptedModel([Reply("hi", input_tokens=1000, output_tokens=0, cached_tokens=800)] * 2) as model:
        scripted_cost(model.model, 0.001, 0.002)
        full = LLMClient(max_retries=0).complete(model.model, [{"role": "user", "content": "q"}])
        scripted_cost(model.model, 0.001, 0.002, cached_input_per_token=0.0001)
        discounted = LLMClient(max_retries=0).complete(model.model, [{"role": "user", "content": "q"}])
    assert full.cached_input_tokens == 800
    assert full.cost_usd == pytest.approx(1.0)
    assert discounted.cost_usd == pytest.approx(200 * 0.001 + 800 * 0.0001)
