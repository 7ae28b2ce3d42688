"""Capture everything a cell prints, from Python, from threads and from child processes.

Python-level writes go through :class:`StreamRouter` objects installed as ``sys.stdout``,
``sys.stderr`` and their ``__stdout__``/``__stderr__`` twins, so no name user code can
reach leads to the protocol stream. File descriptors 1 and 2 are pipes drained by
:class:`FdCapture`, so ``os.write(1, ...)`` and subprocess output land in the cell's
output too instead of anywhere the host reads protocol from.
"""

from __future__ import annotations

import codecs
import collections
import io
import os
import select
import threading


OMITTED_MARKER = "\n[... {omitted} characters omitted ...]\n"


def clip_middle(text: str, limit: int, marker: str = OMITTED_MARKER) -> str:
    """Keep the head and the tail of ``text`` within about ``limit`` characters; ``marker``
    (with an ``{omitted}`` field) says how much was cut between them."""
    if len(text) <= limit:
        return text
    tail = limit // 4
    head = limit - tail
    return text[:head] + marker.format(omitted=len(text) - head - tail) + text[len(text) - tail:]


class OutputBuffer:
    """Keeps the head and the tail of a stream, up to ``limit`` characters in all.

    A flood (``while True: print(...)``) costs O(limit) memory; the total is still
    counted so the host can say how much was cut.
    """

    def __init__(self, limit: int) -> None:
        self._head_limit = limit - limit // 4
        self._tail_limit = limit // 4
        self._head: list[str] = []
        self._head_size = 0
        self._tail: collections.deque[str] = collections.deque()
        self._tail_size = 0
        self.total = 0
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        with self._lock:
            self.total += len(text)
            room = self._head_limit - self._head_size
            if room > 0:
                piece = text[:room]
                self._head.append(piece)
                self._head_size += len(piece)
                text = text[room:]
            if text and self._tail_limit:
                self._tail.append(text[-self._tail_limit:])
                self._tail_size += min(len(text), self._tail_limit)
                while self._tail_size - len(self._tail[0]) >= self._tail_limit:
                    self._tail_size -= len(self._tail.popleft())

    @property
    def truncated(self) -> bool:
        return self.total > self._head_size + self._tail_size

    def getvalue(self, marker: str = OMITTED_MARKER) -> str:
        with self._lock:
            head = "".join(self._head)
            tail = "".join(self._tail)
            if self._tail_size > self._tail_limit:
                tail = tail[self._tail_size - self._tail_limit:]
            omitted = self.total - len(head) - len(tail)
            if omitted > 0:
                return head + marker.format(omitted=omitted) + tail
            return head + tail


class StreamRouter(io.TextIOBase):
    """A text stream that forwards to whatever buffer the running cell owns."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name
        self.target: OutputBuffer | None = None

    @property
    def encoding(self) -> str:  # type: ignore[override]  # fixed, where TextIOBase has an attribute
        return "utf-8"

    @property
    def errors(self) -> str:  # type: ignore[override]  # fixed, where TextIOBase has an attribute
        return "replace"

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        target = self.target
        if target is not None:
            target.write(text)
        return len(text)

    def flush(self) -> None:
        pass


class FdCapture:
    """Turns fds 1 and 2 into pipes and routes what arrives on them to the routers."""

    def __init__(self, routers: dict[int, StreamRouter]) -> None:
        self._routers = routers
        self._pipes: dict[int, int] = {}
        self._decoders = {fd: codecs.getincrementaldecoder("utf-8")("replace") for fd in routers}
        self._lock = threading.Lock()

    def install(self) -> None:
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        for fd in self._routers:
            read_end, write_end = os.pipe()
            os.dup2(write_end, fd)
            os.close(write_end)
            os.set_blocking(read_end, False)
            self._pipes[read_end] = fd
        threading.Thread(target=self._pump, name="rlm-fd-capture", daemon=True).start()

    def drain(self) -> None:
        """Route everything already written, so a cell's result includes it."""
        with self._lock:
            for read_end in self._pipes:
                self._read_available(read_end)

    def _pump(self) -> None:
        while True:
            ready, _, _ = select.select(list(self._pipes), [], [])
            with self._lock:
                for read_end in ready:
                    self._read_available(read_end)

    def _read_available(self, read_end: int) -> None:
        fd = self._pipes[read_end]
        while True:
            try:
                data = os.read(read_end, 65536)
            except BlockingIOError:
                return
            if not data:
                return
            text = self._decoders[fd].decode(data)
            if text:
                self._routers[fd].write(text)
