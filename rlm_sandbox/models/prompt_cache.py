"""Cache breakpoints, for the providers whose prompt cache reads only up to a marked one.

OpenAI, Azure OpenAI, DeepSeek, xAI and Gemini 2.5 cache a repeated prompt prefix by
themselves. Claude (on Anthropic, Bedrock, Vertex AI or Azure AI) and Amazon Nova on Bedrock
cache only up to a breakpoint the request marks, and bill a cache write at a premium.
litellm places the marks from ``cache_control_injection_points``, in each provider's own
shape (Anthropic's ``cache_control`` blocks, Bedrock's ``cachePoint``); this module decides
when to ask it to.

A root request (at any depth) is a conversation that grows by appending, so two marks serve
it: the first message (the system prompt, the same for every run with the same settings,
or the first user message that carries it when the system prompt is folded) and the last
message, which the next request repeats. Two marks, of the four providers accept. Gemini
gets none: litellm turns its marks into a separately created and billed context-cache
object, while Gemini 2.5 caches implicitly. A single-prompt sub-call (``llm_query``) gets
none either: its prompt is one message, unlike every other, so a mark would pay the write
premium for a cache nothing reads; the system prompt asks the model to put the
instructions shared by batched prompts first, which automatic caches serve.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

__all__ = ["CONVERSATION_MARKS", "INJECTION_OPTION", "PromptCache", "needs_marks", "with_marks"]

PromptCache = Literal["auto", "off"]
#: The litellm option that carries the marks; a user's own (``model_options``) wins.
INJECTION_OPTION = "cache_control_injection_points"
#: The first message and the last one of a conversation.
CONVERSATION_MARKS: tuple[dict[str, Any], ...] = ({"location": "message", "index": 0},
                                                   {"location": "message", "index": -1})
#: Providers that host Claude, whose cache needs marks.
_CLAUDE_HOSTS = frozenset({"anthropic", "bedrock", "vertex_ai", "vertex_ai_beta", "azure_ai"})


@functools.lru_cache(maxsize=256)
def needs_marks(model: str, custom_llm_provider: str | None = None) -> bool:
    """True when ``model``'s provider caches a prefix only up to a marked breakpoint (as
    litellm's ``get_llm_provider`` names the provider; a model it cannot route: False)."""
    from .runtime import load_litellm

    litellm = load_litellm()
    try:
        provider = litellm.get_llm_provider(model=model, custom_llm_provider=custom_llm_provider)[1]
    except Exception:  # noqa: BLE001 - litellm's own error when it cannot route: then nothing is marked
        return False
    if provider == "anthropic" or (provider in _CLAUDE_HOSTS and "claude" in model.lower()):
        return True
    if provider == "bedrock":  # Nova caches with cachePoint; Llama or Mistral there would refuse it
        return bool(litellm.utils.supports_prompt_caching(model=model, custom_llm_provider=provider))
    return False


def with_marks(model: str, options: dict[str, Any], setting: PromptCache) -> dict[str, Any]:
    """``options`` for a conversation's request to ``model``, with cache marks added when
    ``setting`` is "auto", the provider needs them and the user gave none of their own."""
    if setting == "off" or INJECTION_OPTION in options:
        return options
    if not needs_marks(model, options.get("custom_llm_provider")):
        return options
    return {**options, INJECTION_OPTION: [dict(mark) for mark in CONVERSATION_MARKS]}
