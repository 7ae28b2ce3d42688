"""A scripted model reached through litellm's real code path: the ``scripted`` provider.

`ScriptedModel` answers from a script (or a function of the prompt) as a litellm custom
provider named ``scripted``, so code calls it exactly as it calls a real model
(`litellm.completion(model=scripted.model, ...)`), retries, usage and cost included.

Why it lives in the package, not with the tests: ``rlm-sandbox demo`` runs offline on it
and the evaluation's oracle is one (``scripted/oracle``). `rlm_sandbox.testing` re-exports
it for tests, next to the HTTP test server that answers with the same `Reply` objects.

Nothing here touches litellm or the network at import time: the provider is registered
when the first ScriptedModel is created (litellm is imported the package's way, offline).
"""

from __future__ import annotations

import asyncio
import enum
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .runtime import load_litellm

__all__ = ["AUTO", "PROVIDER", "Reply", "ReplyLike", "ScriptedModel", "as_reply", "estimate_tokens",
           "scripted_cost", "usage_of"]

PROVIDER = "scripted"


class _Auto(enum.Enum):
    AUTO = "auto"

    def __repr__(self) -> str:
        return "AUTO"


#: Default for Reply token counts: estimate them from the text (see `estimate_tokens`).
AUTO = _Auto.AUTO


@dataclass(frozen=True)
class Reply:
    """One scripted answer.

    Token counts default to an estimate from the text; give numbers to control them, or
    set both to None for a response whose `usage` is None (as some providers send).
    `error` is raised instead of answering — pass a litellm exception instance such as
    ``litellm.RateLimitError("slow down", llm_provider="scripted", model="m")`` to test
    retries. `delay_s` sleeps first (time.sleep in sync calls, asyncio.sleep in async).
    `no_choices` answers with an empty `choices` list, as a misbehaving provider may.
    `raw_body` (OpenAICompatibleServer only) is sent as the HTTP 200 body exactly as given:
    malformed JSON, a response cut short, anything a broken proxy may send. `finish_reason`
    is the choice's (``length`` for a reply cut off at ``max_tokens``). `cached_tokens` is the
    part of the prompt's tokens the provider says it read from its prompt cache (reported as
    litellm's ``usage.prompt_tokens_details.cached_tokens``); None says nothing about a cache.
    """

    content: str | None = ""
    input_tokens: int | None | _Auto = AUTO
    output_tokens: int | None | _Auto = AUTO
    delay_s: float = 0.0
    error: BaseException | None = None
    no_choices: bool = False
    raw_body: bytes | None = None
    finish_reason: str = "stop"
    cached_tokens: int | None = None


ReplyLike = str | Reply | BaseException | Callable[[list[dict]], str | Reply]


def estimate_tokens(text: str) -> int:
    """The scripted models' token estimate: about four characters a token, at least one."""
    return len(text) // 4 + 1


def _prompt_text(messages: list[dict]) -> str:
    parts: list[str] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):  # multi-part content: count the text parts
            parts.extend(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return "".join(parts)


def as_reply(item: Any, messages: list[dict]) -> Reply:
    if callable(item) and not isinstance(item, (Reply, BaseException)):
        item = item(messages)
    if isinstance(item, Reply):
        return item
    if isinstance(item, str):
        return Reply(content=item)
    if isinstance(item, BaseException):
        return Reply(error=item)
    raise TypeError(f"a scripted reply must be str, Reply, an exception or a callable, "
                    f"not {type(item).__name__}")


def usage_of(reply: Reply, messages: list[dict]) -> tuple[int, int] | None:
    if reply.input_tokens is None and reply.output_tokens is None:
        return None
    prompt = (estimate_tokens(_prompt_text(messages)) if reply.input_tokens is AUTO
              else int(reply.input_tokens or 0))
    completion = (estimate_tokens(reply.content or "") if reply.output_tokens is AUTO
                  else int(reply.output_tokens or 0))
    return prompt, completion


# --- the registry and the litellm provider ------------------------------------------

_registry: weakref.WeakValueDictionary[str, ScriptedModel] = weakref.WeakValueDictionary()
_registry_lock = threading.Lock()
_handler: Any = None


def _ensure_provider() -> None:
    """Put one ``scripted`` entry in litellm.custom_provider_map (again, if someone
    replaced the map)."""
    global _handler
    litellm = load_litellm()

    with _registry_lock:
        if _handler is None:
            _handler = _make_handler_class()()
        if not any(item.get("provider") == PROVIDER for item in litellm.custom_provider_map):
            litellm.custom_provider_map = [*litellm.custom_provider_map,
                                           {"provider": PROVIDER, "custom_handler": _handler}]


def _lookup(model: str) -> ScriptedModel:
    name = model.split("/", 1)[1] if model.startswith(PROVIDER + "/") else model
    with _registry_lock:
        scripted = _registry.get(name)
    if scripted is None:
        raise _bad_request(model, f"no ScriptedModel named {name!r} is alive: it was closed or "
                                  "garbage-collected; keep a reference to it while it is used")
    return scripted


def _bad_request(model: str, message: str) -> Exception:
    litellm = load_litellm()

    # A litellm BadRequestError passes through litellm's exception mapping unchanged
    # and is permanent, so LLMClient does not retry it.
    return litellm.BadRequestError(message=message, model=model, llm_provider=PROVIDER)


def _make_handler_class() -> type:
    """Built lazily because its base class lives in litellm (slow to import)."""
    litellm = load_litellm()
    from litellm import CustomLLM

    def fill(model_response: Any, scripted: ScriptedModel, reply: Reply,
             messages: list[dict]) -> Any:
        if reply.raw_body is not None:
            raise _bad_request(scripted.model, "Reply(raw_body=...) is for OpenAICompatibleServer; a ScriptedModel "
                                               "answers through litellm's objects, not raw HTTP")
        response: Any = model_response if model_response is not None else litellm.ModelResponse()
        response.choices[0].message.content = reply.content
        response.choices[0].finish_reason = reply.finish_reason
        if reply.no_choices:
            response.choices = []
        response.model = scripted.model
        usage = usage_of(reply, messages)
        if usage is None:
            response.usage = None
        else:
            details = None if reply.cached_tokens is None else {"cached_tokens": min(reply.cached_tokens, usage[0])}
            response.usage = litellm.Usage(prompt_tokens=usage[0], completion_tokens=usage[1],
                                           total_tokens=usage[0] + usage[1], prompt_tokens_details=details)
        return response

    class ScriptedProvider(CustomLLM):
        """Routes ``scripted/<name>`` calls to the live ScriptedModel of that name.

        litellm passes everything by keyword, `model` without the ``scripted/`` prefix.
        """

        def completion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
            scripted = _lookup(model)
            reply = scripted._next(messages)
            if reply.delay_s:
                time.sleep(reply.delay_s)
            if reply.error is not None:
                raise reply.error
            return fill(kwargs.get("model_response"), scripted, reply, messages)

        async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> Any:
            scripted = _lookup(model)
            # On a worker thread: a responder may block (sleep, read files), and it must
            # not stall the event loop that every other call of the process shares.
            reply = await asyncio.to_thread(scripted._next, messages)
            if reply.delay_s:
                await asyncio.sleep(reply.delay_s)
            if reply.error is not None:
                raise reply.error
            return fill(kwargs.get("model_response"), scripted, reply, messages)

    return ScriptedProvider


# --- the scripted model --------------------------------------------------------------

class ScriptedModel:
    """A model that answers from a script, reached through litellm as `self.model`.

    Each call takes the next item of `replies` (a string, a `Reply`, an exception to
    raise, or a callable of the messages returning either); with `responder`, every call
    is answered by `responder(messages)` instead, for sub-models whose answer depends on
    the prompt. `calls` records the messages of every call. Safe to call from many
    threads and event loops at once.

    Registered in a weak registry: keep a reference while it is used; `close()` (or the
    `with` block) unregisters it at once.
    """

    def __init__(self, replies: Sequence[ReplyLike] | None = None, *,
                 responder: Callable[[list[dict]], str | Reply] | None = None,
                 name: str | None = None) -> None:
        if replies is None and responder is None:
            raise ValueError("ScriptedModel needs replies, a responder, or both")
        self.name = name or f"m-{uuid.uuid4().hex[:12]}"
        if "/" in self.name:
            raise ValueError(f"ScriptedModel name {self.name!r} must not contain '/'")
        self._replies: list[ReplyLike] = list(replies or [])
        self._responder = responder
        self._lock = threading.Lock()
        self._calls: list[list[dict]] = []
        self._closed = False
        _ensure_provider()
        with _registry_lock:
            if self.name in _registry:
                raise ValueError(f"a ScriptedModel named {self.name!r} already exists; "
                                 "close it first or pick another name")
            _registry[self.name] = self

    @property
    def model(self) -> str:
        """The litellm model string: ``scripted/<name>``."""
        return f"{PROVIDER}/{self.name}"

    @property
    def calls(self) -> list[list[dict]]:
        """A copy of the messages of every call so far, in call order."""
        with self._lock:
            return list(self._calls)

    @property
    def call_count(self) -> int:
        with self._lock:
            return len(self._calls)

    @property
    def remaining(self) -> int:
        """Scripted replies not used yet (a responder answers after they run out)."""
        with self._lock:
            return max(0, len(self._replies) - len(self._calls))

    def _next(self, messages: list[dict]) -> Reply:
        recorded = [dict(m) for m in messages]
        with self._lock:
            if self._closed:
                raise _bad_request(self.model, f"ScriptedModel {self.name} is closed")
            index = len(self._calls)
            self._calls.append(recorded)
            item: Any = self._replies[index] if index < len(self._replies) else None
        if item is None:
            if self._responder is None:
                raise _bad_request(self.model, f"ScriptedModel {self.name} ran out of replies "
                                               f"after {len(self._replies)} calls")
            item = self._responder
        return as_reply(item, recorded)

    def close(self) -> None:
        """Unregister: later calls to `self.model` fail with a clear error."""
        with self._lock:
            self._closed = True
        with _registry_lock:
            if _registry.get(self.name) is self:
                del _registry[self.name]

    def __enter__(self) -> ScriptedModel:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ScriptedModel(name={self.name!r}, calls={self.call_count})"


def scripted_cost(model: str, input_per_token: float, output_per_token: float, *,
                  cached_input_per_token: float | None = None) -> None:
    """Give a model (e.g. ``scripted.model``) a price in litellm's cost map, so cost
    accounting can be tested; `LLMClient` then reports `cost_usd` for it. Cached prompt
    tokens cost ``cached_input_per_token`` (the input price when not given: no discount),
    and writing the cache costs the input price."""
    litellm = load_litellm()

    cached = float(input_per_token if cached_input_per_token is None else cached_input_per_token)
    litellm.register_model({model: {
        "input_cost_per_token": float(input_per_token),
        "output_cost_per_token": float(output_per_token),
        "litellm_provider": model.split("/", 1)[0] if "/" in model else PROVIDER,
        "cache_read_input_token_cost": cached,   # said, so litellm does not warn (nor charge cached tokens $0)
        "cache_creation_input_token_cost": float(input_per_token),
        "mode": "chat",
    }})
