"""Test helpers: the scripted litellm model (re-exported) and a real OpenAI-style HTTP server.

`ScriptedModel`, `Reply` and `scripted_cost` live in :mod:`rlm_sandbox.models.scripted`
(the demo and the evaluation's oracle run on them); they are re-exported here, where
tests look for them. `OpenAICompatibleServer` is a tiny OpenAI-style chat endpoint on
127.0.0.1 for tests that must cross a real socket; it answers with the same `Reply`s.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

from .models.scripted import AUTO, Reply, ScriptedModel, as_reply, estimate_tokens, scripted_cost, usage_of

__all__ = ["AUTO", "OpenAICompatibleServer", "PrefixCache", "RecordedRequest", "Reply", "ScriptedModel",
           "ServedUsage", "estimate_tokens", "scripted_cost"]

#: Providers cache prompt prefixes in steps of this many tokens (OpenAI: 1,024, then 128 at a time).
CACHE_STEP_TOKENS = 128


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


class ServedUsage(NamedTuple):
    """What one answered chat request was billed for, as the server reported it."""

    prompt_tokens: int
    cached_tokens: int
    completion_tokens: int
    model: str


class PrefixCache:
    """A provider's automatic prompt cache, as OpenAI describes its own: a request that repeats
    the prefix of an earlier request to the same model, of at least ``min_tokens``, is read
    from the cache for that prefix, rounded down to ``CACHE_STEP_TOKENS``.

    Tokens are the scripted models' estimate (four characters a token); a message's role is
    part of what must repeat. Every request is kept (a real cache forgets after minutes; a
    test or benchmark run is shorter than that)."""

    def __init__(self, min_tokens: int) -> None:
        if min_tokens < 1:
            raise ValueError(f"prefix_cache_min_tokens must be at least 1, not {min_tokens}")
        self.min_tokens = min_tokens
        self._seen: dict[str, list[str]] = {}
        self._lock = threading.Lock()

    def read(self, model: str, messages: list[dict], prompt_tokens: int) -> int:
        """The cached tokens of this request (then remembered for the next ones)."""
        text = _serialised(messages)
        with self._lock:
            earlier = self._seen.setdefault(model, [])
            shared = max((_common_prefix(text, other) for other in earlier), default=0)
            earlier.append(text)
        tokens = min(shared // 4, prompt_tokens)
        tokens -= tokens % CACHE_STEP_TOKENS
        return tokens if tokens >= self.min_tokens else 0


def _serialised(messages: list[dict]) -> str:
    """The request as a cache compares it: each message's role, then its text."""
    parts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
        parts.append(f"\x00{message.get('role')}\x01{content or ''}")
    return "".join(parts)


def _common_prefix(a: str, b: str) -> int:
    """Length of the longest common prefix, by bisection (slice comparisons run in C)."""
    low, high = 0, min(len(a), len(b))
    while low < high:
        middle = (low + high + 1) // 2
        if a[:middle] == b[:middle]:
            low = middle
        else:
            high = middle - 1
    return low


class OpenAICompatibleServer:
    """An OpenAI-style ``POST /v1/chat/completions`` endpoint on 127.0.0.1, for tests.

    `responder(messages)` returns the answer text or a `Reply` (its tokens become the
    response's `usage`; its `error` becomes an HTTP error with the exception's
    `status_code`, default 500). Use as a context manager; point clients at `.url`
    (``http://127.0.0.1:<port>/v1``); `.requests` records what arrived and `.usage` what each
    answered request was billed for. Streaming is not supported.

    With ``prefix_cache_min_tokens`` the server behaves like a provider's prompt cache
    (:class:`PrefixCache`): ``usage.prompt_tokens_details.cached_tokens`` says how much of each
    prompt repeated an earlier one's prefix. A `Reply` with its own ``cached_tokens`` wins.
    """

    def __init__(self, responder: Callable[[list[dict]], str | Reply], *,
                 host: str = "127.0.0.1", port: int = 0, prefix_cache_min_tokens: int | None = None) -> None:
        self.responder = responder
        self.cache = PrefixCache(prefix_cache_min_tokens) if prefix_cache_min_tokens is not None else None
        self._usage: list[ServedUsage] = []
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

    @property
    def usage(self) -> list[ServedUsage]:
        """Per answered chat request, in the order answered: prompt, cached and completion tokens."""
        with self._lock:
            return list(self._usage)

    def _bill(self, reply: Reply, body: dict[str, Any]) -> dict[str, Any] | None:
        """The response's ``usage`` (None when the reply has none), noted in ``.usage``."""
        usage = usage_of(reply, body["messages"])
        if usage is None:
            return None
        model = str(body.get("model", "test-model"))
        cached = reply.cached_tokens
        if cached is None and self.cache is not None:
            cached = self.cache.read(model, body["messages"], usage[0])
        with self._lock:
            self._usage.append(ServedUsage(usage[0], min(cached or 0, usage[0]), usage[1], model))
        billed: dict[str, Any] = {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                                  "total_tokens": usage[0] + usage[1]}
        if cached is not None:
            billed["prompt_tokens_details"] = {"cached_tokens": min(cached, usage[0])}
        return billed

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
                    reply = as_reply(server.responder, body["messages"])
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
                usage = server._bill(reply, body)
                self._send(HTTPStatus.OK, {
                    "id": f"chatcmpl-{uuid.uuid4().hex[:16]}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": str(body.get("model", "test-model")),
                    "choices": [] if reply.no_choices else [{
                        "index": 0, "finish_reason": reply.finish_reason,
                        "message": {"role": "assistant", "content": reply.content}}],
                    "usage": usage,
                })

        return Handler
