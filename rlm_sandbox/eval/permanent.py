"""Spotting a provider error that every later task would meet too, so the suite stops at once.

A bad or missing API key, or a model name the provider does not know, fails every task the
same way: running hundreds more only waits on (and may pay for) calls that cannot succeed.
The run itself turns such an error into ``status="error"`` with a message, so the suite
cannot tell it from a one-off failure by the result alone; :class:`PermanentErrorWatch` sits
between the run and its model client and notes the exception as it passes (it changes
nothing the run sees).

A replay cassette miss is *not* treated as permanent: each task has its own cassette, so one
task's miss says nothing about the next one's, and a replayed task costs neither money nor
waiting (it is answered offline, at once); every miss is still an error that fails the suite.
"""

from __future__ import annotations

from typing import Any

from ..errors import LLMAuthenticationError, LLMModelNotFound
from ..models import ModelClient

__all__ = ["PERMANENT_ERRORS", "PermanentErrorWatch"]

#: The model errors no retry and no other task can mend: the suite stops the tasks left.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (LLMAuthenticationError, LLMModelNotFound)


class PermanentErrorWatch:
    """A model client that passes every call to ``inner`` and remembers the first permanent
    provider error it saw (``seen``: its class name and message), raising it on unchanged."""

    def __init__(self, inner: ModelClient) -> None:
        self.inner = inner
        self.seen: str | None = None

    async def acomplete(self, model: str, messages: list[dict], **call: Any) -> Any:
        try:
            return await self.inner.acomplete(model, messages, **call)
        except PERMANENT_ERRORS as exc:
            if self.seen is None:
                self.seen = f"{type(exc).__name__}: {exc}"
            raise

    def count_tokens(self, model: str, messages: list[dict] | None = None, *, text: str | None = None) -> int:
        return self.inner.count_tokens(model, messages, text=text)

    def price_of(self, model: str) -> Any:
        return self.inner.price_of(model)
