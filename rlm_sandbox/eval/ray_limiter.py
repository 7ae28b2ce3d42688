"""A provider rate limit shared by every worker of a cluster: requests and tokens per minute.

:class:`RateSchedule` is plain Python (no Ray here): it hands out start times so that no
window of a minute holds more than ``requests_per_minute`` requests or ``tokens_per_minute``
input tokens (a generic cell-rate schedule with a burst of ``burst`` requests). The Ray
backend runs ONE instance as an actor (calls to an actor run one at a time, so the schedule
needs no lock), and :class:`RateLimitedClient` wraps each run's model client: before a
request it asks the actor when it may start and sleeps until then. Waiting, not failing, is
the point: 32 workers then share the provider's limit instead of each hitting it at full
speed and burning retries on 429s.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

from pydantic import BaseModel, Field, model_validator

from ..models import ModelClient

__all__ = ["RateLimit", "RateLimitedClient", "RateSchedule"]


class RateLimit(BaseModel):
    """A cluster-wide limit; give requests or tokens per minute, or both."""

    requests_per_minute: float | None = Field(None, gt=0)
    tokens_per_minute: float | None = Field(None, gt=0, description="input tokens, as the client counts them")
    burst: int = Field(1, ge=1, description="requests that may start at once before pacing sets in")

    @model_validator(mode="after")
    def _some_limit(self) -> "RateLimit":
        if self.requests_per_minute is None and self.tokens_per_minute is None:
            raise ValueError("a rate limit needs requests_per_minute or tokens_per_minute (or both)")
        return self


class RateSchedule:
    """Start times for requests under a :class:`RateLimit` (one instance for the whole cluster)."""

    def __init__(self, limit: RateLimit, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit, self.clock = limit, clock
        self._request_at = self._token_at = clock()  # theoretical arrival times (cell-rate schedule)
        self.granted = 0

    def reserve(self, tokens: int = 0) -> float:
        """Reserve a request of ``tokens`` input tokens; returns the seconds to wait before it starts."""
        now = self.clock()
        limit = self.limit
        interval = 60.0 / limit.requests_per_minute if limit.requests_per_minute else 0.0
        cost = tokens * 60.0 / limit.tokens_per_minute if limit.tokens_per_minute else 0.0
        # A request may start once its theoretical time, less the burst's slack, has come.
        start = max(now, self._request_at - interval * (limit.burst - 1), self._token_at)
        self._request_at = max(self._request_at, start) + interval
        self._token_at = max(self._token_at, start) + cost
        self.granted += 1
        return start - now

    def granted_count(self) -> int:
        """Requests reserved so far (an actor's attributes are not readable from outside)."""
        return self.granted


class RateLimitedClient:
    """A model client that waits for the shared schedule before every request."""

    def __init__(self, inner: ModelClient, reserve: Callable[[int], Awaitable[float]]) -> None:
        self.inner, self._reserve = inner, reserve

    async def acomplete(self, model: str, messages: list[dict], *, max_tokens: int | None = None,
                        price: Any = None, **call: Any) -> Any:
        """``call``: the protocol's other keywords (``options``, ``on_retry``), passed on as given."""
        wait = await self._reserve(self.inner.count_tokens(model, messages))
        if wait > 0:
            await asyncio.sleep(wait)
        return await self.inner.acomplete(model, messages, max_tokens=max_tokens, price=price, **call)

    def count_tokens(self, model: str, messages: list[dict] | None = None, *, text: str | None = None) -> int:
        return self.inner.count_tokens(model, messages, text=text)

    def price_of(self, model: str) -> Any:
        return self.inner.price_of(model)

    def __getattr__(self, name: str) -> Any:  # anything else the run reads from its client
        return getattr(self.inner, name)
