"""The host's end of one kernel connection: requests, replies and callbacks.

Everything the kernel sends is untrusted. Malformed lines, replies to requests nobody
made and calls to unknown functions are answered or dropped, never trusted. While the
host waits for a reply it also serves the kernel's callbacks (``llm_query`` ...) on a
thread pool, and the time they take is not charged to the cell's timeout: the timeout
is for runaway code, not for slow models.
"""

from __future__ import annotations

import itertools
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..kernel.protocol import (
    MAX_KERNEL_LINE,
    FrameError,
    FrameReader,
    FrameWriter,
    error_reply,
    ok_reply,
)
from .base import Callbacks

log = logging.getLogger(__name__)


class KernelUnresponsive(Exception):
    """The kernel did not answer in time (after an interrupt, if one was allowed)."""


class CellClock:
    """Time a request has run, not counting spans where a host callback was in flight."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._start = time.monotonic()
        self._in_flight = 0
        self._paused_at = 0.0
        self._paused_total = 0.0

    def pause(self) -> None:
        with self._lock:
            if self._in_flight == 0:
                self._paused_at = time.monotonic()
            self._in_flight += 1

    def resume(self) -> None:
        with self._lock:
            self._in_flight -= 1
            if self._in_flight == 0:
                self._paused_total += time.monotonic() - self._paused_at

    @property
    def paused(self) -> bool:
        return self._in_flight > 0

    def elapsed(self) -> float:
        with self._lock:
            now = time.monotonic()
            running_pause = now - self._paused_at if self._in_flight else 0.0
            return now - self._start - self._paused_total - running_pause


class KernelConnection:
    """Requests and callbacks over ``sock``: a connected socket, or any stream with
    fileno/recv_into/sendall/shutdown/close (the attached-stdio transport)."""

    def __init__(self, sock: Any, callbacks: Callbacks, *, max_concurrency: int,
                 exceptions: tuple[str, ...] = ()) -> None:
        self._sock = sock
        # The kernel has no reason to send raw blobs, so the host accepts none.
        self._reader = FrameReader(sock.fileno(), sock.recv_into, max_line=MAX_KERNEL_LINE, max_blob=0)
        self._writer = FrameWriter(sock.sendall)
        self._ids = itertools.count(1)
        self._callbacks = dict(callbacks)
        self._exceptions = set(exceptions)
        self._max_concurrency = max_concurrency
        self._pool: ThreadPoolExecutor | None = None
        self.notices: list[dict[str, Any]] = []  # errors the kernel reported about our frames

    def set_callbacks(self, callbacks: Callbacks, exceptions: tuple[str, ...]) -> None:
        """Replace the host functions served (a pooled sandbox gets its work late)."""
        self._callbacks = dict(callbacks)
        self._exceptions = set(exceptions)

    def read(self, timeout: float) -> dict[str, Any]:
        return self._reader.read(timeout=timeout)

    def send(self, message_type: str, *, blob: bytes | memoryview | None = None, **fields: Any) -> int:
        request_id = next(self._ids)
        self._writer.send({"type": message_type, "id": request_id, **fields}, blob)
        return request_id

    def request(self, message_type: str, *, timeout: float, blob: bytes | memoryview | None = None,
                **fields: Any) -> dict[str, Any]:
        request_id = self.send(message_type, blob=blob, **fields)
        reply, _ = self.wait(request_id, timeout=timeout)
        return reply

    def wait(self, request_id: int, *, timeout: float,
             interrupt_grace: float | None = None) -> tuple[dict[str, Any], bool]:
        """Wait for the reply to ``request_id``, serving callbacks meanwhile.

        With ``interrupt_grace``, a request that runs past ``timeout`` is sent an
        interrupt and given that long to answer. Returns (reply, interrupted); raises
        KernelUnresponsive if no reply came, StreamClosed if the kernel went away.
        """
        clock = CellClock()
        interrupted_at: float | None = None
        while True:
            if interrupted_at is None:
                remaining = timeout - clock.elapsed()
                if remaining <= 0 and not clock.paused:
                    if interrupt_grace is None:
                        raise KernelUnresponsive(f"no reply within {timeout:g} s")
                    self._writer.send({"type": "interrupt", "target": request_id})
                    interrupted_at = time.monotonic()
                    continue
                wait_for = 0.05 if clock.paused else remaining
            else:
                wait_for = interrupted_at + (interrupt_grace or 0) - time.monotonic()
                if wait_for <= 0:
                    raise KernelUnresponsive(f"no reply within {interrupt_grace:g} s of an interrupt")
            try:
                message = self._reader.read(timeout=max(wait_for, 0.001))
            except TimeoutError:
                continue
            except FrameError as exc:
                log.warning("ignoring a malformed line from the kernel: %s", exc)
                continue
            kind, message_id = message.get("type"), message.get("id")
            if kind == "call":
                self._serve(message, clock, refuse=interrupted_at is not None)
            elif kind == "reply" and message_id == request_id:
                return message, interrupted_at is not None
            elif kind == "reply" and message_id is None:
                self.notices.append(message)
            # anything else is stale (a reply to an abandoned request) or junk: dropped

    # -- callbacks ------------------------------------------------------------------

    def _serve(self, message: dict[str, Any], clock: CellClock, *, refuse: bool) -> None:
        call_id, name = message.get("id"), message.get("name")
        args, kwargs = message.get("args", []), message.get("kwargs", {})
        if not isinstance(call_id, str):
            return  # cannot even be answered
        function = self._callbacks.get(name) if isinstance(name, str) else None
        if function is None:
            self._send_quietly(error_reply(call_id, "UnknownCallback",
                                           f"no host function named {name!r}; available: "
                                           f"{', '.join(sorted(self._callbacks)) or 'none'}"))
        elif not isinstance(args, list) or not isinstance(kwargs, dict):
            self._send_quietly(error_reply(call_id, "BadCall", "args must be a list and kwargs a dict"))
        elif refuse:
            self._send_quietly(error_reply(call_id, "CellTimeout",
                                           "the cell ran past its timeout and is being interrupted"))
        else:
            clock.pause()
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._max_concurrency, thread_name_prefix="rlm-callback")
            self._pool.submit(self._run_callback, call_id, name, function, args, kwargs, clock)

    def _run_callback(self, call_id: str, name: str, function: Any, args: list[Any],
                      kwargs: dict[str, Any], clock: CellClock) -> None:
        try:
            try:
                reply = ok_reply(call_id, value=function(*args, **kwargs))
            except Exception as exc:  # noqa: BLE001 - the cell gets the exception, not the host
                reply = error_reply(call_id, self._error_name(exc), str(exc) or type(exc).__name__)
            try:
                self._writer.send(reply)
            except (TypeError, ValueError):
                self._send_quietly(error_reply(
                    call_id, "ValueNotSerializable",
                    f"{name}() returned a {type(reply.get('value')).__name__}, which is not "
                    "JSON-serialisable; host functions must return str, numbers, lists or dicts"))
            except OSError:
                pass  # the kernel is gone; the waiting side will notice
        finally:
            clock.resume()

    def _error_name(self, exc: Exception) -> str:
        """The nearest class name the cell can catch: a subclass of LLMError raised on the
        host arrives as LLMError when only LLMError was declared to the sandbox."""
        for cls in type(exc).__mro__:
            if cls.__name__ in self._exceptions:
                return cls.__name__
        return type(exc).__name__

    def _send_quietly(self, message: dict[str, Any]) -> None:
        try:
            self._writer.send(message)
        except OSError:
            pass

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked reading it
        except OSError:
            pass
        self._sock.close()
