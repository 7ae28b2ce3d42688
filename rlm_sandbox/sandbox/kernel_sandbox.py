"""What every kernel-backed sandbox shares: socket, handshake, upload, cells, restarts.

The host listens on a Unix socket in a fresh private directory; the kernel connects,
proves it was started by us (a one-time token), and the listener is closed and removed
at once, so nothing else can ever connect. Subclasses only say how to launch the
kernel process, how to kill it and why it died.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from abc import abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import (
    ContextTypeError,
    SandboxClosed,
    SandboxError,
    SandboxStartError,
    VariableNotFound,
)
from ..kernel.capture import clip_middle
from ..kernel.protocol import PREVIEW_CHARS, PROTOCOL_VERSION, FrameError, StreamClosed
from . import cleanup
from .base import (
    Context,
    ExecResult,
    FinalAnswer,
    Sandbox,
    SandboxLimits,
)
from .bounds import message_cap
from .connection import Ignored, KernelConnection, KernelUnresponsive
from .host import Host
from .replies import exec_result, lost_result, raise_for_error

SOCKET_NAME = "kernel.sock"
#: A str or bytes variable at least this big is kept by the kernel after assign(), so
#: assigning the very same object again sends its name instead of its bytes.
KEEP_BYTES = 64 * 1024


def encode_context(context: Context) -> tuple[str, bytes]:
    """Pick the wire form of a context: raw UTF-8, raw bytes, or JSON for data."""
    if isinstance(context, str):
        return "str", context.encode("utf-8", "surrogatepass")
    if isinstance(context, bytes):
        return "bytes", context  # no copy
    if isinstance(context, (bytearray, memoryview)):
        return "bytes", bytes(context)
    if context is None or isinstance(context, (list, dict)):
        try:
            return "json", json.dumps(context, ensure_ascii=False).encode("utf-8", "surrogatepass")
        except (TypeError, ValueError) as exc:
            raise ContextTypeError(f"context holds something that is not JSON-compatible: {exc}. "
                                   "Use str, bytes, list[str], or lists/dicts of JSON values.") from None
    raise ContextTypeError(f"context must be str, bytes, list or dict, not {type(context).__name__}; "
                           "convert it first (e.g. str(x) or json-compatible data)")


class KernelSandbox(Sandbox):
    """A sandbox whose cells run in our kernel, reached over a Unix socket."""

    #: uid the kernel runs as; the socket directory is handed to it when we can chown.
    kernel_uid: int | None = None
    #: The host's end of the protocol (the security tests swap in weakened ones as controls).
    connection_class: type[KernelConnection] = KernelConnection

    def __init__(self, context: Context = None, *, limits: SandboxLimits | None = None,
                 host: Host | None = None) -> None:
        self.limits = limits or SandboxLimits()
        self._set_work(context, host or Host())
        self._used = False  # whether any request but the start-up ones was sent
        self._conn: KernelConnection | None = None
        self._socket_dir: Path | None = None
        self._lock = threading.RLock()  # one request at a time
        self._close_lock = threading.Lock()
        self._closed = False
        self._start_timings: dict[str, float] = {}
        self.context_info: dict[str, Any] = {}
        self.restarts = 0
        self._kept: dict[str, Any] = {}  # name -> the object the kernel keeps (see assign)
        self.assigned_bytes = 0  # bytes of variables assign() has sent, in all
        self._ignored = Ignored()  # shared by the connections to every kernel this sandbox starts
        cleanup.install_signal_handlers()

    def _set_work(self, context: Context, host: Host) -> None:
        # Strings and bytes are immutable: keep the caller's object and encode it per upload
        # (a 100 MB str would otherwise cost 100 MB more per sandbox). Lists and dicts are
        # encoded once, now, so a restart reloads them as they were, even if the caller
        # mutates them later.
        if isinstance(context, (str, bytes)):
            self._context: Context = context
            self._context_kind = "str" if isinstance(context, str) else "bytes"
            self._context_bytes: bytes | None = None
        else:
            self._context = None
            self._context_kind, self._context_bytes = encode_context(context)
        if not isinstance(host, Host):
            raise TypeError(f"host must be a Host(callbacks, exceptions), not a {type(host).__name__}")
        self.host = host

    def load(self, context: Context = None, host: Host | None = None) -> "KernelSandbox":
        """Give a sandbox that has run nothing its context and host (starting it if needed).

        This is what a warm pool does when a sandbox is taken: the container is already
        up, so only the context travels. A sandbox that has run code is refused: its
        kernel may hold anything that code left behind.
        """
        with self._lock:
            if self._used:
                raise SandboxError("this sandbox has already run code; load() only prepares fresh ones")
            self._set_work(context, host or Host())
            if self._conn is None:
                return self.start()  # starting uploads the work just set
            self._conn.set_host(self.host)
            self._configure_and_upload(self._conn)
            return self

    # -- what a caller may read -----------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called: a closed sandbox cannot start again."""
        return self._closed

    @property
    def socket_dir(self) -> Path | None:
        """The private directory holding the kernel's socket; None before ``start()``,
        after ``close()`` (which removes it) and over a transport without a socket."""
        return self._socket_dir

    @property
    def unmatched_replies(self) -> int:
        """Replies from the kernel to no request the host was waiting for (one it never sent,
        or has not sent yet: a cell writing into the kernel's channel), dropped; over restarts.
        The first one is logged as a warning."""
        return self._ignored.unmatched_replies

    @property
    def ignored_messages(self) -> int:
        """Every message from the kernel the host dropped (malformed, refused, of an unknown
        type, unmatched replies, notices of bad frames), over restarts."""
        return self._ignored.messages

    @property
    def start_timings(self) -> Mapping[str, float]:
        """Seconds each stage of the latest kernel start took (a restart starts afresh),
        read-only; empty before ``start()``. Stages, in order, where they apply:

        - ``resolve_image``: finding (or building) the image; Docker only, once per sandbox.
        - ``launch``: creating and starting the container (or the local process).
        - ``accept``: socket transport: from launch until the kernel connects (its boot and
          imports).
        - ``hello``: until the kernel's hello arrives (over stdio this holds the boot).
        - ``upload``: configure + context sent (str contexts are encoded here) until both
          replies are read; ``send_context`` is the sending of the context frame within it.
          ``load()`` records these two again for the context it uploads.
        """
        return MappingProxyType(self._start_timings)

    @contextlib.contextmanager
    def _timed(self, stage: str) -> Iterator[None]:
        began = time.perf_counter()
        try:
            yield
        finally:
            self._start_timings[stage] = time.perf_counter() - began

    # -- provider hooks -------------------------------------------------------------

    @abstractmethod
    def _launch(self, socket_dir: Path, token: str) -> None:
        """Start the kernel so that it connects to ``socket_dir/kernel.sock``."""

    @abstractmethod
    def _alive(self) -> bool:
        """Whether the kernel process (or its container) is still running."""

    @abstractmethod
    def _kill(self) -> None:
        """Stop the kernel for good and free what it used. Must not raise."""

    def _death_reason(self) -> str:
        """A sentence on why the kernel stopped, for the model and the user."""
        return "the kernel process exited"

    def _startup_diagnostics(self) -> str:
        return ""

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> "KernelSandbox":
        with self._lock:
            if self._closed:
                raise SandboxClosed("this sandbox was closed; create a new one")
            if self._conn is None:
                cleanup.register(self)
                try:
                    self._start_kernel()
                except BaseException:
                    self.close()
                    raise
            return self

    def close(self) -> None:
        """Stop and remove everything. Safe twice, and from another thread while a cell
        runs: killing the kernel cuts the cell short (it ends with SandboxClosed)."""
        if not self._mark_closed():
            return
        self._kill()  # without waiting for the lock: a running cell may hold it for minutes
        with self._lock:  # a start in progress finishes (or fails) first: then nothing is missed
            self._drop_kernel()
            self._remove()
        cleanup.unregister(self)

    def remove_now(self) -> None:
        """For a process about to die: kill the kernel and remove the socket directory at
        once, taking no lock (the signal may have interrupted its holder)."""
        if self._mark_closed():
            self._remove()

    def _mark_closed(self) -> bool:
        with self._close_lock:
            if self._closed:
                return False
            self._closed = True
            return True

    def _remove(self) -> None:
        self._kill()
        socket_dir, self._socket_dir = self._socket_dir, None
        if socket_dir is not None:
            shutil.rmtree(socket_dir, ignore_errors=True)

    def _drop_kernel(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self._kill()

    def _start_kernel(self) -> None:
        self._start_timings = {}  # a new dict: views of the previous start stay as they were
        self._kept = {}  # a new kernel keeps nothing
        token = secrets.token_hex(16)
        stream = self._open_kernel(token)
        if self._closed:  # closed from another thread while the kernel was starting
            stream.close()
            self._kill()
            raise SandboxClosed("the sandbox was closed while it was starting")
        conn = self.connection_class(stream, self.host, max_concurrency=self.limits.max_callback_concurrency,
                                     max_line=message_cap(self.limits.max_value_bytes), ignored=self._ignored)
        try:
            self._handshake(conn, token)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    def _open_kernel(self, token: str) -> Any:
        """Launch the kernel and return the connected stream to it: by default a Unix
        socket in a private directory, which the kernel connects to once."""
        if self._socket_dir is None:
            if self._closed:
                raise SandboxClosed("the sandbox was closed while it was starting")
            self._socket_dir = _make_socket_dir(self.kernel_uid)
        listener = _listen(self._socket_dir / SOCKET_NAME, self.kernel_uid)
        try:
            with self._timed("launch"):
                self._launch(self._socket_dir, token)
            with self._timed("accept"):
                return self._accept(listener)
        finally:
            listener.close()
            (self._socket_dir / SOCKET_NAME).unlink(missing_ok=True)

    def _accept(self, listener: socket.socket) -> socket.socket:
        deadline = time.monotonic() + self.limits.start_timeout_s
        listener.settimeout(0.1)
        while True:
            try:
                sock, _ = listener.accept()
                sock.setblocking(True)
                return sock
            except socket.timeout:
                pass
            if not self._alive():
                raise SandboxStartError(f"the kernel stopped before connecting: {self._death_reason()}. "
                                        f"{self._startup_diagnostics()}".strip())
            if time.monotonic() > deadline:
                raise SandboxStartError(
                    f"the kernel did not connect within {self.limits.start_timeout_s:g} s. "
                    f"{self._startup_diagnostics()} Raise limits.start_timeout_s on a slow machine.".strip())

    def _handshake(self, conn: KernelConnection, token: str) -> None:
        try:
            with self._timed("hello"):
                hello = conn.read(timeout=self.limits.start_timeout_s)
        except (TimeoutError, StreamClosed, FrameError) as exc:
            raise SandboxStartError(f"the kernel did not say hello: {exc}") from None
        if hello.get("type") != "hello" or not hmac.compare_digest(str(hello.get("token")), token):
            raise SandboxStartError("the process that connected is not the kernel we started")
        if hello.get("protocol") != PROTOCOL_VERSION:
            raise SandboxStartError(
                f"the kernel speaks protocol {hello.get('protocol')!r}, this host {PROTOCOL_VERSION}; "
                "the image is stale: rebuild it with `rlm-sandbox image build`")
        self._configure_and_upload(conn)

    def _configure_and_upload(self, conn: KernelConnection) -> None:
        """Pipelined: configure and upload, then read both replies (one round trip)."""
        timeout = self.limits.start_timeout_s
        with self._timed("upload"):
            configure_id = conn.send("configure", callbacks=[
                {"name": name, "doc": (getattr(fn, "__doc__", None) or "").strip()}
                for name, fn in self.host.callbacks.items()], exceptions=list(self.host.exceptions),
                max_output_chars=self.limits.max_stream_chars)
            payload = self._context_bytes if self._context_bytes is not None else encode_context(self._context)[1]
            with self._timed("send_context"):
                context_id = conn.send("context", kind=self._context_kind, blob=payload)
            for request_id in (configure_id, context_id):
                try:
                    reply, _ = conn.wait(request_id, timeout=max(timeout, len(payload) / 50e6))
                except (KernelUnresponsive, StreamClosed) as exc:
                    raise SandboxStartError(f"the kernel failed while loading the context: {exc}. "
                                            f"{self._death_reason()}") from None
                raise_for_error(reply)
                if request_id == context_id:
                    self.context_info = {"type": reply.get("context_type"), "length": reply.get("length")}

    def _restart(self) -> None:
        if self._closed:
            raise SandboxClosed("the sandbox was closed while a request was running")
        self.restarts += 1
        self._drop_kernel()
        self._start_kernel()

    def _connection(self) -> KernelConnection:
        if self._closed:
            raise SandboxClosed("this sandbox was closed; create a new one")
        if self._conn is None:
            self.start()
        assert self._conn is not None
        return self._conn

    # -- requests -------------------------------------------------------------------

    def exec(self, code: str, *, timeout: float | None = None, offload_threshold: int | None = None,
             preview_chars: int = PREVIEW_CHARS) -> ExecResult:
        if not isinstance(code, str):
            raise TypeError(f"code must be a str, not {type(code).__name__}")
        timeout = self.limits.cell_timeout_s if timeout is None else timeout
        wall = self.limits.wall_timeout(timeout)
        with self._lock:
            conn = self._connection()
            self._used = True
            started = time.monotonic()
            try:
                request_id = conn.send("exec", code=code, offload_threshold=offload_threshold,
                                       preview_chars=preview_chars)
                reply, interrupted = conn.wait(request_id, timeout=timeout, wall_timeout=wall,
                                               interrupt_grace=self.limits.interrupt_grace_s)
            except KernelUnresponsive as exc:
                self._restart()
                return lost_result(
                    "CellTimeout", f"{exc}, so the sandbox was restarted: all variables were lost "
                    "(context was reloaded)", time.monotonic() - started, timed_out=True)
            except (StreamClosed, OSError):
                reason = self._death_reason()
                self._restart()
                return lost_result(
                    "KernelDied",
                    f"{reason}; the sandbox was restarted: all variables were lost (context was reloaded)",
                    time.monotonic() - started)
            stopped_by = {"timeout": f"its {timeout:g} s timeout",
                          "wall": f"its {wall:g} s wall-clock limit (time in host calls included)"}
            return exec_result(reply, stopped_by.get(interrupted or ""), self.limits)

    def get(self, name: str, *, max_bytes: int | None = None) -> Any:
        cap = self.limits.max_value_bytes  # every reply must fit the host's message cap
        reply = self._request("get", name=name, max_bytes=min(max_bytes or cap, cap))
        return reply.get("value")

    def assign(self, values: Mapping[str, Any]) -> None:
        """Bind variables in the namespace, in one round trip.

        Strings and bytes travel as raw bytes in one blob, never as code or JSON text; other
        values as JSON. A str or bytes of at least ``KEEP_BYTES`` is kept by the kernel, and
        assigning that same object under the same name again sends only its name (a caller
        that re-sends its inputs before every cell, as DSPy does, pays for a big one once).
        """
        specs: list[dict[str, Any]] = []
        parts: list[bytes] = []
        kept = dict(self._kept)
        for name, value in values.items():
            if not isinstance(name, str) or not name.isidentifier():
                raise ValueError(f"variable name {name!r} must be a Python identifier")
            if isinstance(value, (str, bytes)) and kept.get(name) is value:
                specs.append({"name": name, "kind": "kept"})
                continue
            kind, data = _encode_variable(name, value)
            keep = isinstance(value, (str, bytes)) and len(data) >= KEEP_BYTES
            specs.append({"name": name, "kind": kind, "size": len(data), "keep": keep})
            parts.append(data)
            if keep:
                kept[name] = value
            else:
                kept.pop(name, None)
        blob = parts[0] if len(parts) == 1 else b"".join(parts)
        self._request("assign", timeout=max(self.limits.cell_timeout_s, len(blob) / 50e6), blob=blob, vars=specs)
        self._kept = kept
        self.assigned_bytes += len(blob)

    def reset(self) -> None:
        self._kept = {}
        self._request("reset")

    def ping(self) -> None:
        """One round trip to the kernel (a health check, and the latency benchmark)."""
        self._request("ping")

    def _request(self, message_type: str, *, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        with self._lock:
            conn = self._connection()
            self._used = self._used or message_type != "ping"
            try:
                reply = conn.request(message_type, timeout=timeout or self.limits.cell_timeout_s, **fields)
            except (KernelUnresponsive, StreamClosed, OSError) as exc:
                reason = self._death_reason() if isinstance(exc, (StreamClosed, OSError)) else str(exc)
                self._restart()
                raise SandboxError(f"{message_type} failed ({reason}); the sandbox was restarted and "
                                   "its variables were lost") from None
            raise_for_error(reply)
            return reply

    def final_var(self, name: str) -> FinalAnswer | None:
        """``FINAL_VAR(name)`` as a request, not a cell: the kernel's own helper answers even if a
        cell rebound the name, and no cell runs, is numbered or is captured for it."""
        try:
            reply = self._request("final_var", name=name)
        except VariableNotFound:
            return None
        # the answer is checked and clipped on the host exactly as a cell's FINAL is
        return exec_result({"ok": True, "final": reply.get("final")}, None, self.limits).final

    def memory_status(self) -> str:
        """What ``memory_status()`` lists, asked of the kernel directly (a cell may rebind the name)."""
        text = self._request("memory_status", timeout=10).get("text")
        return clip_middle(text, self.limits.max_stream_chars) if isinstance(text, str) else ""


# -- helpers ---------------------------------------------------------------------------

def _encode_variable(name: str, value: Any) -> tuple[str, bytes]:
    """The wire form of one assigned variable: raw UTF-8 or bytes, else JSON."""
    if isinstance(value, str):
        return "str", value.encode("utf-8", "surrogatepass")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return "bytes", bytes(value)
    try:
        return "json", json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")
    except (TypeError, ValueError) as exc:
        raise ContextTypeError(f"variable {name} holds something that is not JSON-compatible ({exc}); "
                               "pass str, bytes, numbers, or lists/dicts of JSON values") from None


def _make_socket_dir(kernel_uid: int | None) -> Path:
    """A fresh directory holding only the socket: 0700 and owned by the kernel's uid when
    we are root; otherwise 0711 (enter, not list) and protected by the one-time token."""
    path = Path(tempfile.mkdtemp(prefix="rlm-sandbox-"))
    if kernel_uid is not None and kernel_uid != os.geteuid():
        if os.geteuid() == 0:
            os.chown(path, kernel_uid, kernel_uid)
        else:
            path.chmod(0o711)
    return path


def _listen(path: Path, kernel_uid: int | None) -> socket.socket:
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path.unlink(missing_ok=True)  # whatever a dead kernel may have left there
    listener.bind(str(path))
    if kernel_uid is not None and kernel_uid != os.geteuid():
        if os.geteuid() == 0:
            os.chown(path, kernel_uid, kernel_uid)
            path.chmod(0o600)
        else:
            path.chmod(0o666)
    listener.listen(1)
    return listener

