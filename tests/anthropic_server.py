"""A test-only Anthropic-style ``POST /v1/messages`` endpoint on 127.0.0.1 (issue 21, part B).

litellm sends an ``anthropic/claude-...`` model with ``api_base`` pointed here in Anthropic's own
wire format, with the cache marks (``cache_control`` blocks) it placed, so a test reads exactly
what would reach Anthropic. The reply is in Anthropic's format, its usage priced like Anthropic's
cache: the longest marked prefix (through a block carrying ``cache_control``, in the order
tools, system, messages) that an earlier request also marked is read from the cache
(``cache_read_input_tokens``); the rest of the longest marked prefix, when it weighs at least
``min_cached_tokens``, is written (``cache_creation_input_tokens``); ``input_tokens`` is what
is left. Tokens are estimated at four characters each.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHARS_PER_TOKEN = 4


def marked_prefixes(body: dict[str, Any]) -> list[str]:
    """The request's prefixes that end with a marked block, shortest first, each as canonical JSON."""
    blocks: list[Any] = [*(body.get("tools") or [])]
    system = body.get("system")
    blocks += [{"type": "text", "text": system}] if isinstance(system, str) else list(system or [])
    for message in body.get("messages") or []:
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        blocks += [{"role": message.get("role"), **part} for part in parts]
    prefixes, seen = [], []
    for block in blocks:
        seen.append({key: value for key, value in block.items() if key != "cache_control"})
        if isinstance(block, dict) and block.get("cache_control"):
            prefixes.append(json.dumps(seen, sort_keys=True))
    return prefixes


class AnthropicServer:
    """``responder(body)`` returns the reply's text. Use as a context manager; point litellm at
    ``.url`` (``api_base``); ``.requests`` holds every body received, ``.usage`` every reply's usage."""

    def __init__(self, responder: Callable[[dict[str, Any]], str], *, min_cached_tokens: int = 1024) -> None:
        self.responder, self.min_cached_tokens = responder, min_cached_tokens
        self.requests: list[dict[str, Any]] = []
        self.usage: list[dict[str, int]] = []
        self._cached: set[str] = set()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="anthropic-test-server", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def __enter__(self) -> AnthropicServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._thread.join(timeout=5)
        self._httpd.server_close()

    def _usage(self, body: dict[str, Any], output: str) -> dict[str, int]:
        """Anthropic's usage for ``body``, with this server's cache updated."""
        total = len(json.dumps([body.get("tools"), body.get("system"), body.get("messages")])) // CHARS_PER_TOKEN
        prefixes = marked_prefixes(body)
        with self._lock:
            read = max((len(p) // CHARS_PER_TOKEN for p in prefixes if p in self._cached), default=0)
            longest = len(prefixes[-1]) // CHARS_PER_TOKEN if prefixes else 0
            written = longest - read if longest >= self.min_cached_tokens and longest > read else 0
            self._cached.update(p for p in prefixes if len(p) // CHARS_PER_TOKEN >= self.min_cached_tokens)
        return {"input_tokens": max(total - read - written, 1), "output_tokens": len(output) // CHARS_PER_TOKEN + 1,
                "cache_read_input_tokens": read, "cache_creation_input_tokens": written}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
                pass

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path.split("?")[0].rstrip("/") != "/v1/messages":
                    self._send(404, {"type": "error", "error": {"type": "not_found_error", "message": self.path}})
                    return
                with server._lock:
                    server.requests.append(body)
                text = server.responder(body)
                usage = server._usage(body, text)
                with server._lock:
                    server.usage.append(usage)
                self._send(200, {"id": f"msg_{uuid.uuid4().hex[:20]}", "type": "message", "role": "assistant",
                                 "model": body.get("model", "claude"), "content": [{"type": "text", "text": text}],
                                 "stop_reason": "end_turn", "stop_sequence": None, "usage": usage})

        return Handler
