"""Scripted models for tests: through litellm's real code path, or over real HTTP.

`ScriptedModel` answers from a script (or a function of the prompt) as a litellm custom
provider named ``scripted``, so code under test calls it exactly as it calls a real model
(`litellm.completion(model=scripted.model, ...)`), retries, usage and cost included.
`OpenAICompatibleServer` is a tiny OpenAI-style chat endpoint on 127.0.0.1 for tests that
must cross a real socket.

Nothing here touches litellm or the network at import time: the provider is registered
when the first ScriptedModel is created (litellm is imported the package's way, offline).
"""

from __future__ import annotations

import asyncio
import enum
import json
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .models.runtime import load_litellm

__all__ = ["AUTO", "OpenAICompatibleServer", "RecordedRequest", "Reply", "ScriptedModel",
           "estimate_tokens", "scripted_cost"]

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
    is the choice's (``length`` for a reply cut off at ``max_tokens``).
    """

    content: str | None = ""
    input_tokens: int | None | _Auto = AUTO
    output_tokens: int | None | _Auto = AUTO
    delay_s: float = 0.0
    error: BaseException | None = None
    no_choices: bool = False
    raw_body: bytes | None = None
    finish_reason: str = "stop"


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


def _as_reply(item: Any, messages: list[dict]) -> Reply:
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


def _usage_of(reply: Reply, messages: list[dict]) -> tuple[int, int] | None:
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
        usage = _usage_of(reply, messages)
        if usage is None:
            response.usage = None
        else:
            response.usage = litellm.Usage(prompt_tokens=usage[0], completion_tokens=usage[1],
                                           total_tokens=usage[0] + usage[1])
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
        return _as_reply(item, recorded)

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


def scripted_cost(model: str, input_per_token: float, output_per_token: float) -> None:
    """Give a model (e.g. ``scripted.model``) a price in litellm's cost map, so cost
    accounting can be tested; `LLMClient` then reports `cost_usd` for it."""
    litellm = load_litellm()

    litellm.register_model({model: {
        "input_cost_per_token": float(input_per_token),
        "output_cost_per_token": float(output_per_token),
        "litellm_provider": model.split("/", 1)[0] if "/" in model else PROVIDER,
        "cache_read_input_token_cost": 0.0,   # said, so litellm does not warn
        "cache_creation_input_token_cost": 0.0,
        "mode": "chat",
    }})


# --- a real HTTP endpoint ------------------------------------------------------------

@dataclass(frozen=True)
class RecordedRequest:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def messages(self) -> list[dict]:
        return list(self.body.get("messages") or [])


class OpenAICompatibleServer:
    """An OpenAI-style ``POST /v1/chat/completions`` endpoint on 127.0.0.1, for tests.

    `responder(messages)` returns the answer text or a `Reply` (its tokens become the
    response's `usage`; its `error` becomes an HTTP error with the exception's
    `status_code`, default 500). Use as a context manager; point clients at `.url`
    (``http://127.0.0.1:<port>/v1``); `.requests` records what arrived. Streaming is not
    supported.
    """

    def __init__(self, responder: Callable[[list[dict]], str | Reply], *,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.responder = responder
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((host, port), self._handler_class())
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """The api_base for OpenAI-compatible clients (ends in ``/v1``)."""
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def start(self) -> OpenAICompatibleServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever,
                                            kwargs={"poll_interval": 0.05},
                                            name=f"openai-compatible-{self.port}", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> OpenAICompatibleServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self._requests.append(request)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"   # keep-alive, as real endpoints do
            disable_nagle_algorithm = True  # else header and body writes stall ~40 ms
            timeout = 30                    # idle keep-alive connections end

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                self._send_raw(status, json.dumps(payload).encode())

            def _send_raw(self, status: int, data: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
                self._send(status, {"error": {"message": message, "type": kind,
                                              "param": None, "code": None}})

            def do_GET(self) -> None:
                if self.path.rstrip("/") in ("/v1/models", "/models"):
                    self._send(200, {"object": "list", "data": [
                        {"id": "test-model", "object": "model", "owned_by": "test"}]})
                else:
                    self._error(404, f"no route GET {self.path}")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    self._error(400, "the body is not JSON")
                    return
                server._record(RecordedRequest("POST", self.path, dict(self.headers.items()),
                                               body if isinstance(body, dict) else {}))
                if self.path.split("?")[0].rstrip("/") not in ("/v1/chat/completions",
                                                               "/chat/completions"):
                    self._error(404, f"no route POST {self.path}")
                    return
                if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
                    self._error(400, "'messages' must be a list")
                    return
                if body.get("stream"):
                    self._error(400, "this test server does not stream")
                    return
                try:
                    reply = _as_reply(server.responder, body["messages"])
                except Exception as exc:  # noqa: BLE001 - a responder bug is a 500, not a hang
                    self._error(500, f"responder failed: {exc!r}", "server_error")
                    return
                if reply.delay_s:
                    time.sleep(reply.delay_s)
                if reply.error is not None:
                    status = getattr(reply.error, "status_code", None)
                    status = status if isinstance(status, int) and 400 <= status < 600 else 500
                    self._error(status, str(reply.error),
                                "server_error" if status >= 500 else "invalid_request_error")
                    return
                if reply.raw_body is not None:
                    self._send_raw(HTTPStatus.OK, reply.raw_body)
                    return
                usage = _usage_of(reply, body["messages"])
                self._send(HTTPStatus.OK, {
                    "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": str(body.get("model", "test-model")),
                    "choices": [] if reply.no_choices else [{
                        "index": 0, "finish_reason": reply.finish_reason,
                        "message": {"role": "assistant", "content": reply.content}}],
                    "usage": None if usage is None else {
                        "prompt_tokens": usage[0], "completion_tokens": usage[1],
                        "total_tokens": usage[0] + usage[1]},
                })

        return Handler
