"""The kernel process: connects to the host, then serves requests until told to stop.

Two threads: a reader that takes every message off the socket (so replies to host
calls and interrupts arrive while a cell runs), and the main thread that runs requests
one at a time. Interrupts are real SIGINTs sent to the main thread, so they also wake
``time.sleep`` and blocking calls; the handler only raises while a cell is running, so a
late interrupt can never hit the kernel's own code.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import sys
import threading
from typing import Any, TypeGuard

from .callbacks import HostCallError, HostCalls
from .capture import FdCapture, StreamRouter
from .protocol import (
    CONTEXT_KINDS,
    MAX_HOST_LINE,
    PREVIEW_CHARS,
    PROTOCOL_VERSION,
    FrameError,
    FrameReader,
    FrameTooLarge,
    FrameWriter,
    StreamClosed,
    error_reply,
    ok_reply,
)
from .repl import Repl, decode_context

SOCKET_ENV = "RLM_KERNEL_SOCKET"
TOKEN_ENV = "RLM_KERNEL_TOKEN"
TRANSPORT_ENV = "RLM_KERNEL_TRANSPORT"


class RequestError(Exception):
    """A request was understood but cannot be served; becomes an error reply."""

    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


class KernelServer:
    def __init__(self, sock: Any) -> None:
        """``sock``: a connected Unix socket, or a StdioChannel (anything with fileno,
        recv_into and sendall)."""
        self._sock = sock
        self._pid = os.getpid()
        self._reader = FrameReader(sock.fileno(), sock.recv_into, max_line=MAX_HOST_LINE)
        self._writer = FrameWriter(sock.sendall)
        self._routers = {1: StreamRouter("<stdout>"), 2: StreamRouter("<stderr>")}
        self._fd_capture = FdCapture(self._routers)
        self.calls = HostCalls(self.send)
        self.repl = Repl(self._routers, self._fd_capture)
        self._requests: queue.SimpleQueue[dict[str, Any] | None] = queue.SimpleQueue()
        self._running_exec: Any = None  # id of the exec request now running, else None
        self._main_ident = threading.get_ident()
        self._handlers = {
            "configure": self._configure,
            "context": self._context,
            "assign": self._assign,
            "exec": self._exec,
            "get": self._get,
            "reset": self._reset,
            "ping": lambda message: {},
            "final_var": self._final_var,
            "memory_status": self._memory_status,
        }

    # -- sending --------------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        if os.getpid() != self._pid:
            raise HostCallError("a forked child process cannot talk to the host")
        self._writer.send(message)

    # -- lifecycle ------------------------------------------------------------------

    def serve(self, token: str) -> None:
        signal.signal(signal.SIGINT, self._on_sigint)
        self._fd_capture.install()
        self.repl._attach(None, None)
        self.send({"type": "hello", "protocol": PROTOCOL_VERSION, "token": token,
                   "python": ".".join(map(str, sys.version_info[:3])), "pid": self._pid})
        threading.Thread(target=self._read_loop, name="rlm-reader", daemon=True).start()
        while True:
            message = self._requests.get()
            if message is None:
                return
            if message.get("type") == "shutdown" and isinstance(message.get("id"), (int, str)):
                self._reply(ok_reply(message.get("id")))
                return
            self._reply(self._handle(message))

    def _reply(self, reply: dict[str, Any]) -> None:
        try:
            self.send(reply)
        except (TypeError, ValueError) as exc:  # a value that is not JSON after all
            self.send(error_reply(reply.get("id"), "ValueNotSerializable", str(exc)))

    def _handle(self, message: dict[str, Any]) -> dict[str, Any]:
        request_id = message.get("id")
        if not isinstance(request_id, (int, str, type(None))):
            request_id = None
        kind = message.get("type")
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        if handler is None:
            return error_reply(request_id, "UnknownMessage",
                               f"unknown message type {message.get('type')!r}; "
                               f"expected one of {sorted(self._handlers) + ['shutdown', 'interrupt']}")
        try:
            return ok_reply(request_id, **handler(message))
        except RequestError as exc:
            return error_reply(request_id, exc.error_type, str(exc))
        except Exception as exc:  # noqa: BLE001 - a bad request must never end the kernel
            return error_reply(request_id, "KernelError", f"{type(exc).__name__}: {exc}")

    def _read_loop(self) -> None:
        while True:
            try:
                message = self._reader.read()
            except FrameTooLarge as exc:
                self.send(error_reply(None, "FrameTooLarge", str(exc)))
                continue
            except FrameError as exc:
                self.send(error_reply(None, "ProtocolError", str(exc)))
                continue
            except (StreamClosed, OSError):
                self._host_gone()
            try:
                kind = message.get("type")
                if kind == "reply":
                    self.calls.resolve(message)
                elif kind == "interrupt":
                    self._interrupt(message.get("target"))
                else:
                    self._requests.put(message)  # the main thread validates it
            except Exception as exc:  # noqa: BLE001 - this thread must never die
                self.send(error_reply(None, "ProtocolError", f"{type(exc).__name__}: {exc}"))

    def _host_gone(self) -> None:
        """The host closed the connection (it closed the sandbox, or it died). Nobody is
        left to read a reply, and a cell still running (one that ignores interrupts, or a
        thread it left behind) must not keep the container alive: exit at once, so the
        container stops by itself even when the host could not remove it."""
        self.calls.close()
        os._exit(0)

    # -- interrupts -----------------------------------------------------------------

    def _interrupt(self, target: Any) -> None:
        if isinstance(target, int) and target == self._running_exec:
            signal.pthread_kill(self._main_ident, signal.SIGINT)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        if self._running_exec is not None:
            raise KeyboardInterrupt("interrupted by the host")

    def _interruptible(self, request_id: Any, work: Any) -> None:
        signal.signal(signal.SIGINT, self._on_sigint)  # a cell may have replaced it
        self._running_exec = request_id
        try:
            work()
        finally:
            self._running_exec = None

    # -- requests -------------------------------------------------------------------

    def _configure(self, message: dict[str, Any]) -> dict[str, Any]:
        for key in ("max_output_chars", "max_capture_chars", "max_final_chars"):
            if key in message:
                value = message[key]
                if not isinstance(value, int) or isinstance(value, bool) or value < 100:
                    raise RequestError("BadRequest", f"{key} must be an integer >= 100")
                setattr(self.repl, key, value)
        helpers: dict[str, Any] = {}
        for spec in message.get("callbacks", []):
            name = spec.get("name") if isinstance(spec, dict) else None
            if not isinstance(name, str) or not name.isidentifier() or name == "context":
                raise RequestError("BadRequest", f"callback name {name!r} is not a usable identifier")
            helpers[name] = self.calls.stub(name, str(spec.get("doc", "")))
        for name in message.get("exceptions", []):
            if isinstance(name, str) and name.isidentifier():
                helpers[name] = self.calls.error_class(name)
        helpers["HostCallError"] = HostCallError
        self.repl.add_helpers(helpers)
        return {"helpers": sorted(self.repl.helpers)}

    def _context(self, message: dict[str, Any]) -> dict[str, Any]:
        kind, blob = message.get("kind"), message.pop("blob", None)
        if kind not in CONTEXT_KINDS or blob is None:
            raise RequestError("BadRequest", f"context needs kind in {CONTEXT_KINDS} and a blob")
        try:
            value = decode_context(kind, blob)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise RequestError("BadContext", f"context is not valid {kind}: {exc}") from None
        del blob
        self.repl.set_context(value)
        length = len(value) if hasattr(value, "__len__") else None
        return {"context_type": type(value).__name__, "length": length}

    def _assign(self, message: dict[str, Any]) -> dict[str, Any]:
        """Bind variables from one blob: ``vars`` lists each one's name, kind (str, bytes, json,
        or ``kept``: the value kept from an earlier assign under that name) and byte size, in
        the blob's order; ``keep`` marks values to keep for later ``kept`` assigns."""
        specs, blob = message.get("vars"), message.pop("blob", b"")
        if not isinstance(specs, list):
            raise RequestError("BadRequest", "assign needs 'vars': a list of {name, kind, size}")
        view, offset, values, keep = memoryview(blob), 0, {}, {}
        for spec in specs:
            name, kind, size = (spec.get(key) for key in ("name", "kind", "size")) if isinstance(spec, dict) \
                else (None, None, None)
            if not isinstance(name, str) or not name.isidentifier() or name == "__builtins__":
                raise RequestError("BadRequest", f"variable name {name!r} is not a usable identifier")
            if kind == "kept":
                if name not in self.repl.kept:
                    raise RequestError("NotKept", f"no value of {name!r} was kept; send it again")
                values[name] = self.repl.kept[name]
                continue
            if kind not in CONTEXT_KINDS or not _is_count(size) or offset + size > len(view):
                raise RequestError("BadRequest", f"{name}: kind must be one of {CONTEXT_KINDS} and size "
                                   "must fit in the blob")
            try:
                values[name] = decode_context(kind, view[offset:offset + size])
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise RequestError("BadValue", f"{name} is not valid {kind}: {exc}") from None
            offset += size
            keep[name] = bool(spec.get("keep"))
        del view, blob
        for name, kept in keep.items():  # only once every value is read: a bad request changes nothing
            if kept:
                self.repl.kept[name] = values[name]
            else:
                self.repl.kept.pop(name, None)
        self.repl.namespace.update(values)
        return {"names": sorted(values)}

    def _exec(self, message: dict[str, Any]) -> dict[str, Any]:
        code = message.get("code")
        if not isinstance(code, str):
            raise RequestError("BadRequest", "exec needs 'code' as a string")
        threshold, preview = message.get("offload_threshold"), message.get("preview_chars", PREVIEW_CHARS)
        if threshold is not None and not _is_count(threshold) or not _is_count(preview):
            raise RequestError("BadRequest", "offload_threshold and preview_chars must be integers >= 0")
        request_id = message.get("id")
        return self.repl.run_cell(code, lambda work: self._interruptible(request_id, work),
                                  offload_threshold=threshold, preview_chars=preview)

    def _get(self, message: dict[str, Any]) -> dict[str, Any]:
        name, max_bytes = message.get("name"), message.get("max_bytes", 16 * 1024 * 1024)
        if not isinstance(name, str) or not isinstance(max_bytes, int):
            raise RequestError("BadRequest", "get needs 'name' (str) and 'max_bytes' (int)")
        try:
            value = self.repl.lookup(name)
        except NameError as exc:
            raise RequestError("VariableNotFound", str(exc)) from None
        try:
            size = len(json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass"))
        except (TypeError, ValueError) as exc:
            raise RequestError(
                "ValueNotSerializable",
                f"{name} is a {type(value).__name__}, which is not JSON-serialisable ({exc}); "
                f"convert it first, e.g. {name}_text = str({name})") from None
        if size > max_bytes:
            raise RequestError("ValueTooLarge",
                               f"{name} is {size} bytes as JSON, over the cap of {max_bytes} bytes")
        return {"value": value, "size": size}

    def _reset(self, message: dict[str, Any]) -> dict[str, Any]:
        self.repl.reset()
        return {}


    def _final_var(self, message: dict[str, Any]) -> dict[str, Any]:
        """What ``FINAL_VAR(name)`` would end the task with, for the host that read it in a reply:
        the kernel's own helper runs (a cell may have rebound the name), and no cell does."""
        name = message.get("name")
        if not isinstance(name, str):
            raise RequestError("BadRequest", "final_var needs 'name' as a string")
        try:
            self.repl._final_var(name)
        except NameError as exc:
            raise RequestError("VariableNotFound", str(exc)) from None
        final, self.repl.final = self.repl.final, None
        return {"final": final}

    def _memory_status(self, message: dict[str, Any]) -> dict[str, Any]:
        """The ``memory_status()`` listing, from the kernel's own helper."""
        return {"text": str(self.repl.memory.status())}


def _is_count(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


class StdioChannel:
    """The protocol over the process's original stdin/stdout (the attached-stdio transport).

    The fds are duplicated before FdCapture turns 0 into /dev/null and 1 into a pipe, so
    nothing a cell prints can reach the protocol stream through fd 0/1.
    """

    def __init__(self) -> None:
        self._read_fd, self._write_fd = os.dup(0), os.dup(1)

    def fileno(self) -> int:
        return self._read_fd

    def recv_into(self, view: memoryview) -> int:
        return os.readv(self._read_fd, [view])

    def sendall(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._write_fd, view):]


def main() -> None:
    transport = os.environ.pop(TRANSPORT_ENV, "socket")
    path = os.environ.pop(SOCKET_ENV, None)
    token = os.environ.pop(TOKEN_ENV, "")
    if transport == "stdio":
        channel: Any = StdioChannel()
    elif path:
        channel = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        channel.connect(path)
    else:
        sys.exit(f"rlm kernel: set {SOCKET_ENV} to the host's Unix socket path, or {TRANSPORT_ENV}=stdio")
    KernelServer(channel).serve(token)
    os._exit(0)  # do not wait for threads a cell left running
