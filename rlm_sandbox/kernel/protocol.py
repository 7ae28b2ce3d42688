"""The wire protocol shared by the host and the in-container kernel.

One UTF-8 JSON object per line. A message whose header carries ``"blob": N`` is followed
by exactly N raw bytes: big payloads (the context) travel without JSON escaping, which
keeps uploads near socket speed. Both sides cap line size, so neither can be made to
buffer without bound, and a bad line is answered with an error instead of a crash.

Message shapes (every request has an ``id``; its reply carries the same ``id``):

    kernel -> host   {"type": "hello", "protocol": 1, "token": ..., "python": "3.11.2"}
    host -> kernel   {"type": "configure", "id": 1, "callbacks": [...], "max_output_chars": ...}
                     {"type": "context", "id": 2, "kind": "str", "blob": N} + N bytes
                     {"type": "assign", "id": 6, "vars": [{"name": "x", "kind": "str", "size": n,
                      "keep": true}, {"name": "y", "kind": "kept"}], "blob": N} + N bytes
                     {"type": "exec", "id": 3, "code": "..."}
                     {"type": "get", "id": 4, "name": "x", "max_bytes": ...}
                     {"type": "reset" | "ping" | "shutdown", "id": 5}
                     {"type": "interrupt", "target": 3}          (no reply)
    kernel -> host   {"type": "call", "id": "c1", "name": "llm_query", "args": [...], "kwargs": {}}
    either way       {"type": "reply", "id": ..., "ok": true, ...}
                     {"type": "reply", "id": ..., "ok": false, "error": {"type": ..., "message": ...}}

This module must stay standard-library only: it is copied into the sandbox image.
"""

from __future__ import annotations

import json
import select
import threading
import time
from typing import Any, Callable

PROTOCOL_VERSION = 1

#: Longest JSON line the kernel accepts from the host (cells are code, not data).
MAX_HOST_LINE = 16 * 1024 * 1024
#: Longest JSON line the host accepts from the kernel (outputs are capped before sending).
MAX_KERNEL_LINE = 64 * 1024 * 1024
#: Largest raw payload (the context) the kernel accepts.
MAX_BLOB = 8 * 1024 * 1024 * 1024

CONTEXT_KINDS = ("str", "bytes", "json")
#: Characters of an offloaded output an ``exec`` reply shows when the request names none.
#: The one default: the host's sandboxes and settings import it from here (the kernel can
#: import nothing outside kernel/).
PREVIEW_CHARS = 200

_RECV_CHUNK = 1 << 18


class FrameError(Exception):
    """A line could not be read as a protocol message. The stream is still usable."""


class FrameTooLarge(FrameError):
    """A line was longer than the cap (or refused by ``check_line``); it was skipped whole.

    ``head`` holds its first bytes, so the reader can still tell whose reply it was.
    """

    def __init__(self, message: str, head: bytes = b"") -> None:
        super().__init__(message)
        self.head = head


class StreamClosed(Exception):
    """The other side closed the stream."""


def encode(message: dict[str, Any]) -> bytes:
    """Serialise one message as a JSON line.

    Non-ASCII text goes out as UTF-8; text that is not valid Unicode (lone surrogates,
    which Python strings can hold) falls back to JSON escapes instead of failing.
    """
    try:
        text = json.dumps(message, ensure_ascii=False, separators=(",", ":"))
        return text.encode("utf-8") + b"\n"
    except UnicodeEncodeError:
        return json.dumps(message, separators=(",", ":")).encode("ascii") + b"\n"


def error_reply(request_id: Any, error_type: str, message: str, **extra: Any) -> dict[str, Any]:
    """Build the one shape every failed request is answered with."""
    error = {"type": error_type, "message": message}
    error.update(extra)
    return {"type": "reply", "id": request_id, "ok": False, "error": error}


def ok_reply(request_id: Any, **fields: Any) -> dict[str, Any]:
    return {"type": "reply", "id": request_id, "ok": True, **fields}


class FrameReader:
    """Reads JSON-line messages (and their raw blobs) from a file descriptor.

    Owns its buffer instead of using a buffered file so that a read can wait with a
    timeout and resume later without losing half-read data.
    """

    def __init__(self, fd: int, recv_into: Callable[[memoryview], int], *,
                 max_line: int, max_blob: int = MAX_BLOB,
                 check_line: Callable[[bytes], None] | None = None) -> None:
        """``check_line`` sees every line before it is parsed and may refuse it by raising
        FrameTooLarge (the host bounds what parsing a line may cost)."""
        self._fd = fd
        self._check_line = check_line
        self._recv_into = recv_into
        self._max_line = max_line
        self._max_blob = max_blob
        self._buf = bytearray()
        self._start = 0
        self._chunk = bytearray(_RECV_CHUNK)

    def read(self, timeout: float | None = None) -> dict[str, Any]:
        """Return the next message. A blob, if any, is in ``message["blob"]`` as a bytearray.

        Raises TimeoutError if no whole message arrived in time (partial data is kept),
        StreamClosed at end of stream, FrameError/FrameTooLarge for a bad line.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        line = self._read_line(deadline)
        if self._check_line is not None:
            self._check_line(line)
        try:
            message = json.loads(line)
        except (ValueError, RecursionError) as exc:  # bad JSON/UTF-8, too deep, huge integers
            raise FrameError(f"not a usable JSON line: {str(exc)[:200]}") from None
        if not isinstance(message, dict):
            raise FrameError("a message must be a JSON object")
        if "blob" in message:
            size = message["blob"]
            if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= self._max_blob:
                raise FrameError(f"blob length must be an integer from 0 to {self._max_blob}")
            message["blob"] = self._read_exact(size, deadline)
        return message

    # -- internals ------------------------------------------------------------------

    def _buffered(self) -> int:
        return len(self._buf) - self._start

    def _fill(self, deadline: float | None) -> None:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._fd], [], [], remaining)[0]:
                raise TimeoutError("no message within the timeout")
        view = memoryview(self._chunk)
        n = self._recv_into(view)
        if n == 0:
            raise StreamClosed("the other side closed the connection")
        if self._start and self._start > len(self._buf) // 2:
            del self._buf[: self._start]
            self._start = 0
        self._buf += view[:n]

    def _read_line(self, deadline: float | None) -> bytes:
        searched = 0  # bytes after _start known to hold no newline (offsets survive compaction)
        while True:
            end = self._buf.find(b"\n", self._start + searched)
            if end >= 0:
                if end - self._start > self._max_line:
                    head = bytes(self._buf[self._start:self._start + 64])
                    self._start = end + 1
                    raise FrameTooLarge(f"line longer than {self._max_line} bytes", head)
                line = bytes(self._buf[self._start:end])
                self._start = end + 1
                return line
            if self._buffered() > self._max_line:
                head = bytes(self._buf[self._start:self._start + 64])
                self._skip_rest_of_line(deadline)
                raise FrameTooLarge(f"line longer than {self._max_line} bytes", head)
            searched = self._buffered()
            self._fill(deadline)

    def _skip_rest_of_line(self, deadline: float | None) -> None:
        while True:
            end = self._buf.find(b"\n", self._start)
            if end >= 0:
                self._start = end + 1
                return
            self._buf.clear()
            self._start = 0
            self._fill(deadline)

    def _read_exact(self, size: int, deadline: float | None) -> bytearray:
        out = bytearray(size)
        have = min(size, self._buffered())
        out[:have] = self._buf[self._start:self._start + have]
        self._start += have
        view = memoryview(out)
        while have < size:
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not select.select([self._fd], [], [], remaining)[0]:
                    raise TimeoutError("blob did not arrive within the timeout")
            n = self._recv_into(view[have:])
            if n == 0:
                raise StreamClosed("the other side closed the connection mid-blob")
            have += n
        return out


class FrameWriter:
    """Writes messages; a lock keeps concurrent writers from interleaving lines."""

    def __init__(self, sendall: Callable[[bytes | memoryview], Any]) -> None:
        self._sendall = sendall
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any], blob: bytes | bytearray | memoryview | None = None) -> None:
        if blob is not None:
            message = {**message, "blob": len(blob)}
        line = encode(message)
        with self._lock:
            self._sendall(line)
            if blob is not None and len(blob):
                self._sendall(memoryview(blob))
