"""The model-client interface: what the loop, the broker and evaluation wrappers rely on.

A ``ModelClient`` answers one chat request at a time (``acomplete``), and says what a
request may cost before it is sent (``count_tokens``, ``price_of``), so budgets can be
reserved ahead. ``LLMClient`` (litellm) implements it; record and replay of model traffic
are wrappers around any implementation. Every failure is an ``LLMError``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

__all__ = ["Completion", "ModelClient", "OnRetry", "Price", "RetryCause", "context_text"]


@dataclass(frozen=True)
class Price:
    """USD per input token and per output token, and per prompt token read from or written to
    the provider's prompt cache (None: charged as input, which is never less than the truth
    for a cache read)."""

    input_per_token: float
    output_per_token: float
    cached_input_per_token: float | None = None
    cache_write_per_token: float | None = None

    def cost(self, input_tokens: int, output_tokens: int, cached_input_tokens: int = 0,
             cache_write_tokens: int = 0) -> float:
        """The price of a call. ``cached_input_tokens`` and ``cache_write_tokens`` are parts of
        ``input_tokens`` (as :class:`Completion` counts them), charged at their own prices; the
        rest of the prompt at the input price. Called with the prompt alone, it is the uncached
        price: what a reservation assumes."""
        cached = min(max(0, cached_input_tokens), input_tokens)
        written = min(max(0, cache_write_tokens), input_tokens - cached)
        read_price = self.input_per_token if self.cached_input_per_token is None else self.cached_input_per_token
        write_price = self.input_per_token if self.cache_write_per_token is None else self.cache_write_per_token
        return ((input_tokens - cached - written) * self.input_per_token + cached * read_price
                + written * write_price + output_tokens * self.output_per_token)

    def ceiling(self, input_tokens: int, output_tokens: int) -> float:
        """The most a call can cost, whatever the provider reads from or writes to its cache:
        every prompt token at the dearest prompt price. A cache write costs more than plain input
        at Anthropic (1.25 times), so pricing the prompt as uncached input is not an upper bound
        when the request carries cache marks; budget reservations use this."""
        dearest = max(self.input_per_token, self.cached_input_per_token or 0.0, self.cache_write_per_token or 0.0)
        return input_tokens * dearest + output_tokens * self.output_per_token


@dataclass(frozen=True)
class RetryCause:
    """One failed attempt that was retried: what went wrong and how long we waited after it."""

    cause: str
    wait_s: float


#: Told of each retried attempt as it happens: (cause, the attempt that failed from 1, most
#: attempts the call may make), before the backoff wait, so a display can say so live.
OnRetry = Callable[[RetryCause, int, int], None]


@dataclass(frozen=True)
class Completion:
    """One model answer and what it cost.

    `duration_s` is the wall time of the whole call, retries and backoff included;
    `retries` is how many attempts failed transiently before this one succeeded, and
    `retry_causes` says why each did. Tokens and cost include attempts that were answered
    but retried (an empty reply is paid for). `cost_usd` is None when the model has no
    known price: unknown, never $0.

    `cached_input_tokens` (read from the provider's prompt cache) and `cache_write_tokens`
    (written to it, for providers that bill writes: Anthropic, Bedrock) are parts of
    `input_tokens`, which stays the whole prompt, so every total keeps its meaning; the cost
    charges each part at its own price.
    """

    text: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float | None
    duration_s: float
    retries: int = 0
    retry_causes: tuple[RetryCause, ...] = ()
    finish_reason: str | None = None
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@runtime_checkable
class ModelClient(Protocol):
    """What a run needs from a model provider."""

    async def acomplete(self, model: str, messages: list[dict[str, Any]], *, max_tokens: int | None = None,
                        price: Price | None = None, options: dict[str, Any] | None = None,
                        on_retry: OnRetry | None = None) -> Completion:
        """Answer ``messages`` with ``model``; raise ``LLMError`` on failure (after retries),
        calling ``on_retry`` before each retry's wait.

        ``options`` are extra provider options for this call (the run's ``model_options`` or
        ``sub_model_options``, checked by ``models.options``), passed only when there are some.
        ``on_retry`` is passed on every call: a client must accept it (and may never call it)."""
        ...

    def count_tokens(self, model: str, messages: list[dict[str, Any]] | None = None, *, text: str | None = None) -> int:
        """Tokens the request (or ``text``) counts for, without calling the model."""
        ...

    def price_of(self, model: str) -> Price | None:
        """USD per token for ``model``, or None when its price is unknown."""
        ...


def context_text(context: Any) -> str:
    """A context as a model reads it in a prompt: text as is, bytes decoded, anything else as
    JSON (a child RLM's query, the eval's direct baseline)."""
    if isinstance(context, str):
        return context
    if isinstance(context, (bytes, bytearray)):
        return bytes(context).decode("utf-8", "replace")
    return json.dumps(context, ensure_ascii=False, default=str)
