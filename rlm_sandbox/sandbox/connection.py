"""The host's end of one kernel connection: requests, replies and callbacks.

Everything the kernel sends is untrusted: a cell can reach the kernel's objects and write
anything at the host. Malformed lines, replies to requests nobody made and calls to unknown
functions are answered or dropped, never trusted, and never kept: host memory per sandbox
stays bounded whatever the kernel sends (see :mod:`.bounds` and docs/DECISIONS.md).

A reply is taken only for the request the host is waiting for, and request ids are drawn
at random: a cell cannot know the id of a request the host has not sent yet, so replies it
writes ahead of time (to decide what the next cells "printed") match nothing and are
dropped. What is dropped is counted in :class:`Ignored`, and each kind is logged once.

While the host waits for a reply it also serves the kernel's callbacks (``llm_query`` ...)
on a thread pool; :class:`CellClock` says how much of that time the cell's timeout is
charged, and a wall-clock limit bounds every request too.
"""

from __future__ import annotations

import logging
import re
import secrets
import socket
import struct
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ..kernel.protocol import (
    FrameError,
    FrameReader,
    FrameTooLarge,
    FrameWriter,
    error_reply,
    ok_reply,
)
from .bounds import VALUE_BYTES, CellClock, message_cap, parse_cost
from .host import Host

log = logging.getLogger(__name__)

#: A kernel that accepts no byte from the host for this long is treated as hung.
WRITE_STALL_S = 10.0
#: Notices (id-less error replies) kept for debugging, each clipped to NOTICE_CHARS.
KEPT_NOTICES, NOTICE_CHARS = 8, 500
#: Request ids are random integers of this many bits (JSON numbers hold them exactly).
REQUEST_ID_BITS = 53

_REPLY_HEAD = re.compile(rb'^\s*\{\s*"type"\s*:\s*"reply"\s*,\s*"id"\s*:\s*(\d{1,18})\s*[,}]')
#: A call's head (the kernel writes "type" and "id" first): a refused call is answered at
#: once, or the cell would wait for its reply until its timeout.
_CALL_HEAD = re.compile(rb'^\s*\{\s*"type"\s*:\s*"call"\s*,\s*"id"\s*:\s*"([A-Za-z0-9_-]{1,64})"')


class KernelUnresponsive(Exception):
    """The kernel did not answer in time (after an interrupt, if one was allowed), or
    stopped reading what the host sends."""


@dataclass
class Ignored:
    """What the host ignored from one sandbox's kernels, summed over restarts. The first of
    each kind is logged as a warning, the rest only counted (a cell can send millions)."""

    messages: int = 0  # everything dropped: malformed, refused, unknown, unmatched, notices
    unmatched_replies: int = 0  # replies to a request the host was not waiting for
    warned_message: bool = False
    warned_unmatched: bool = False


class KernelConnection:
    """Requests and callbacks over ``sock``: a connected socket, or any stream with
    fileno/recv_into/sendall/setsockopt/shutdown/close (the attached-stdio transport)."""

    def __init__(self, sock: Any, host: Host, *, max_concurrency: int, max_line: int = message_cap(16 << 20),
                 ignored: Ignored | None = None) -> None:
        """``ignored``: the sandbox's tally, shared by the connections to its successive kernels."""
        self._sock = sock
        # A send that makes no progress for WRITE_STALL_S fails instead of blocking forever:
        # a cell can stop the kernel from reading, and the host must still keep its deadlines.
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", int(WRITE_STALL_S), 0))
        except OSError as exc:  # a transport that is not a kernel socket (ssh): no stall limit
            log.debug("no send timeout on this transport: %s", exc)
        # The kernel has no reason to send raw blobs, so the host accepts none.
        self._reader = FrameReader(sock.fileno(), sock.recv_into, max_line=max_line, max_blob=0,
                                   check_line=self._check_line)
        self._writer = FrameWriter(sock.sendall)
        self._host = host
        self._max_concurrency = max_concurrency
        self._pool: ThreadPoolExecutor | None = None
        # What parsing one line may cost, and what the calls being served may hold at once:
        # past either, lines are refused, or left unread until calls finish.
        self._max_cost = 4 * max_line
        self._max_calls_cost = max_line
        self._last_cost = 0
        self._calls_done = threading.Condition()
        self._calls_count = 0
        self._calls_cost = 0
        self.notices: deque[dict[str, str]] = deque(maxlen=KEPT_NOTICES)  # id-less errors, clipped
        self.ignored = ignored if ignored is not None else Ignored()

    def set_host(self, host: Host) -> None:
        """Replace the host functions served (a pooled sandbox gets its work late)."""
        self._host = host

    def read(self, timeout: float) -> dict[str, Any]:
        return self._reader.read(timeout=timeout)

    def _new_id(self) -> int:
        """A request id the kernel cannot predict (the control arm of the tests counts instead)."""
        return secrets.randbits(REQUEST_ID_BITS)

    def send(self, message_type: str, *, blob: bytes | memoryview | None = None, **fields: Any) -> int:
        request_id = self._new_id()
        self._write({"type": message_type, "id": request_id, **fields}, blob)
        return request_id

    def request(self, message_type: str, *, timeout: float, blob: bytes | memoryview | None = None,
                **fields: Any) -> dict[str, Any]:
        request_id = self.send(message_type, blob=blob, **fields)
        reply, _ = self.wait(request_id, timeout=timeout, wall_timeout=10 * timeout)
        return reply

    def wait(self, request_id: int, *, timeout: float, wall_timeout: float | None = None,
             interrupt_grace: float | None = None) -> tuple[dict[str, Any], str | None]:
        """Wait for the reply to ``request_id``, serving callbacks meanwhile.

        ``timeout`` is charged as :class:`CellClock` counts; ``wall_timeout`` counts
        everything. With ``interrupt_grace``, a request that runs past either is sent an
        interrupt and given that long to answer. Returns (reply, why it was interrupted:
        None, "timeout" or "wall"); raises KernelUnresponsive if no reply came,
        StreamClosed if the kernel went away.
        """
        clock = CellClock()
        wall_deadline = None if wall_timeout is None else time.monotonic() + wall_timeout
        interrupted: str | None = None
        interrupted_at = 0.0
        gave_up = ""
        while True:
            now = time.monotonic()
            if interrupted is None:
                remaining = timeout - clock.elapsed()
                wall_left = float("inf") if wall_deadline is None else wall_deadline - now
                if remaining <= 0 or wall_left <= 0:
                    why = "timeout" if remaining <= 0 else "wall"
                    limit = timeout if why == "timeout" else wall_timeout
                    what = "timeout" if why == "timeout" else "wall-clock limit"
                    if interrupt_grace is None:
                        raise KernelUnresponsive(f"no reply within its {limit:g} s {what}")
                    self._write({"type": "interrupt", "target": request_id})
                    interrupted, interrupted_at = why, now
                    gave_up = f"the cell ran past its {limit:g} s {what} and ignored the interrupt"
                    continue
                wait_for = min(remaining, wall_left, 0.05 if clock.busy or self._calls_count else remaining)
                if self._calls_full():
                    with self._calls_done:  # leave further lines unread until calls finish
                        self._calls_done.wait(min(wait_for, 0.05))
                    continue
            else:
                wait_for = interrupted_at + (interrupt_grace or 0) - now
                if wait_for <= 0:
                    raise KernelUnresponsive(gave_up)
            message = None  # the last message is not kept alive while the next one is parsed
            try:
                message = self._reader.read(timeout=max(wait_for, 0.001))
            except TimeoutError:
                continue
            except FrameTooLarge as exc:
                refused = _REPLY_HEAD.match(exc.head)
                if refused and int(refused.group(1)) == request_id:
                    return error_reply(request_id, "ReplyTooLarge", f"the kernel's reply was refused: {exc}; "
                                       "ask for less at once (a slice, or the value as one string)"), interrupted
                call = _CALL_HEAD.match(exc.head)
                if call:
                    self._send_quietly(error_reply(call.group(1).decode(), "ValueTooLarge",
                                                   f"the call was refused: {exc}; send less at once "
                                                   "(smaller chunks over several calls)"))
                self._drop("refused a line from the kernel: %s", exc)
                continue
            except FrameError as exc:
                self._drop("ignored a malformed line from the kernel: %s", exc)
                continue
            kind, message_id = message.get("type"), message.get("id")
            if kind == "call":
                self._serve(message, clock, self._last_cost, refuse=interrupted is not None)
            elif kind == "reply" and message_id == request_id:
                return message, interrupted
            elif kind == "reply" and message_id is None:
                self._notice(message)
            elif kind == "reply":
                self._unmatched(message_id, request_id)
            else:
                self._drop("dropped a message of an unknown type from the kernel (type %.40r)", kind)

    def _notice(self, message: dict[str, Any]) -> None:
        """An id-less reply: the kernel's report of a bad frame from us. Kept clipped, and
        only the last few: a cell can send millions."""
        error = found if isinstance(found := message.get("error"), dict) else {}
        self.notices.append({key: str(error.get(key, ""))[:NOTICE_CHARS] for key in ("type", "message")})
        self._drop("the kernel reported: %s", self.notices[-1])

    def _unmatched(self, reply_id: Any, awaited: int) -> None:
        """A reply to a request the host is not waiting for: one it already has a reply to,
        one it never sent, or one not sent yet (a cell writing into the kernel's channel)."""
        self.ignored.unmatched_replies += 1
        if not self.ignored.warned_unmatched:
            self.ignored.warned_unmatched = True
            log.warning("dropped a reply from the kernel to request id %.40r: the host is not waiting for it "
                        "(it waits for %d); a cell may be writing into the kernel's channel. Further ones "
                        "are dropped quietly and counted (Sandbox.unmatched_replies)", reply_id, awaited)
        self._drop("dropped a reply to request id %.40r", reply_id, warn=False)

    def _check_line(self, line: bytes) -> None:
        """Refuse, before parsing, a line whose parse could cost more than the cap."""
        cost = parse_cost(line)
        if cost > self._max_cost:
            # Separators inside strings may be text, not values: count again without them,
            # unless the strings alone (two quotes each) are already too many.
            strings = (line.count(b'"') - line.count(b'\\"')) // 2
            if VALUE_BYTES * strings <= self._max_cost:
                cost = parse_cost(line, outside_strings=True)
        if cost > self._max_cost:
            raise FrameTooLarge(f"a {len(line)}-byte message holding too many values (parsing it could take "
                                f"{cost >> 20} MiB, over the host's cap of {self._max_cost >> 20} MiB)", line[:64])
        self._last_cost = cost

    def _drop(self, what: str, detail: Any, *, warn: bool = True) -> None:
        """Count an ignored message; say so once per sandbox, quietly after that (a cell can
        send millions)."""
        self.ignored.messages += 1
        loud = warn and not self.ignored.warned_message
        self.ignored.warned_message = self.ignored.warned_message or loud
        log.log(logging.WARNING if loud else logging.DEBUG, what, detail)

    # -- writing --------------------------------------------------------------------

    def _write(self, message: dict[str, Any], blob: bytes | memoryview | None = None) -> None:
        try:
            self._writer.send(message, blob)
        except BlockingIOError:  # SO_SNDTIMEO ran out: the kernel took nothing for that long
            raise KernelUnresponsive(f"the kernel stopped reading from the host for {WRITE_STALL_S:g} s") from None

    def _send_quietly(self, message: dict[str, Any]) -> None:
        """Send a reply to a call; a kernel that is gone is noticed by the reading side, one
        that stopped reading raises KernelUnresponsive (on the reading thread, that ends
        the wait)."""
        try:
            self._write(message)
        except OSError:
            pass

    # -- callbacks ------------------------------------------------------------------

    def _calls_full(self) -> bool:
        return self._calls_count >= self._max_concurrency or self._calls_cost >= self._max_calls_cost

    def _serve(self, message: dict[str, Any], clock: CellClock, cost: int, *, refuse: bool) -> None:
        call_id, name = message.get("id"), message.get("name")
        args, kwargs = message.get("args", []), message.get("kwargs", {})
        if not isinstance(call_id, str) or len(call_id) > 64:
            self._drop("dropped a call with an unusable id (%.40r)", call_id)
            return  # cannot even be answered
        function = self._host.callbacks.get(name) if isinstance(name, str) else None
        if function is None:
            self._send_quietly(error_reply(call_id, "UnknownCallback",
                                           f"no host function named {str(name)[:100]!r}; available: "
                                           f"{', '.join(sorted(self._host.callbacks)) or 'none'}"))
        elif not isinstance(args, list) or not isinstance(kwargs, dict):
            self._send_quietly(error_reply(call_id, "BadCall", "args must be a list and kwargs a dict"))
        elif refuse:
            self._send_quietly(error_reply(call_id, "CellTimeout",
                                           "the cell ran past its time limit and is being interrupted"))
        else:
            with self._calls_done:
                self._calls_count += 1
                self._calls_cost += cost
            token = clock.call_started()
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._max_concurrency, thread_name_prefix="rlm-callback")
            try:
                self._pool.submit(self._run_callback, call_id, str(name), function, args, kwargs, clock, token, cost)
            except RuntimeError:  # the pool was shut down: the sandbox is closing
                self._call_finished(clock, token, cost)

    def _run_callback(self, call_id: str, name: str, function: Any, args: list[Any],
                      kwargs: dict[str, Any], clock: CellClock, token: int, cost: int) -> None:
        stopping: BaseException | None = None
        try:
            try:
                reply = ok_reply(call_id, value=function(*args, **kwargs))
            except Exception as exc:  # noqa: BLE001 - the cell gets the exception, not the host
                reply = error_reply(call_id, self._host.error_name(exc), str(exc) or type(exc).__name__)
            except BaseException as exc:  # noqa: BLE001 - SystemExit, a cancel: answered, then raised again below
                reply = error_reply(call_id, self._host.error_name(exc), str(exc) or type(exc).__name__)
                stopping = exc
            del args, kwargs  # the call's arguments are free once it has run
            try:
                self._writer.send(reply)
            except (TypeError, ValueError):
                self._send_quietly(error_reply(
                    call_id, "ValueNotSerializable",
                    f"{name}() returned a {type(reply.get('value')).__name__}, which is not "
                    "JSON-serialisable; host functions must return str, numbers, lists or dicts"))
            except OSError:
                pass  # the kernel is gone or stalled; the waiting side will notice
        finally:
            self._call_finished(clock, token, cost)
        if stopping is not None:
            raise stopping

    def _call_finished(self, clock: CellClock, token: int, cost: int) -> None:
        clock.call_ended(token)
        with self._calls_done:
            self._calls_count -= 1
            self._calls_cost -= cost
            self._calls_done.notify_all()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        try:
            self._sock.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked reading it
        except OSError:
            pass
        self._sock.close()
