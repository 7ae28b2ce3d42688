"""The attached-stdio transport: the protocol over a container's stdin and stdout.

For daemons that cannot bind-mount a host socket (a remote DOCKER_HOST, Docker
Desktop). Docker multiplexes an attached non-TTY container's output: every chunk comes
with an 8-byte header (stream id, then the payload size, big-endian). AttachedStream
strips the headers so the protocol code reads a plain byte stream, exactly as from a
socket; of stderr only the last 8 KiB are kept (to explain a kernel that fails to start),
read in pieces whatever size a chunk header claims.
"""

from __future__ import annotations

import socket
from typing import Any

_STDOUT, _STDERR = 1, 2
_STDERR_KEPT = 8192


class AttachedStream:
    """A socket-like view (fileno, recv_into, sendall) of a container's stdin/stdout."""

    def __init__(self, raw: socket.socket) -> None:
        self._sock = raw
        self._remaining = 0  # payload bytes of the current stdout chunk not read yet
        self.stderr_tail = b""

    @classmethod
    def from_docker(cls, attached: Any) -> "AttachedStream":
        """Unwrap what docker-py's attach_socket returns (a SocketIO, or a socket)."""
        raw = getattr(attached, "_sock", attached)
        raw.setblocking(True)
        return cls(raw)

    def fileno(self) -> int:
        return self._sock.fileno()

    def recv_into(self, view: memoryview) -> int:
        while self._remaining == 0:
            header = self._recv_exact(8)
            if header is None:
                return 0
            stream, size = header[0], int.from_bytes(header[4:8], "big")
            if stream == _STDOUT:
                self._remaining = size
            elif not self._skip(size, keep=stream == _STDERR):
                return 0
        received = self._sock.recv_into(view[:min(len(view), self._remaining)])
        self._remaining -= received
        return received

    def _skip(self, size: int, *, keep: bool) -> bool:
        """Read past a chunk that is not protocol, in pieces (its size is up to 4 GiB),
        keeping the last _STDERR_KEPT bytes of stderr. False at end of stream."""
        while size > 0:
            piece = self._recv_exact(min(size, 1 << 16))
            if piece is None:
                return False
            size -= len(piece)
            if keep:
                self.stderr_tail = (self.stderr_tail + piece)[-_STDERR_KEPT:]
        return True

    def _recv_exact(self, size: int) -> bytes | None:
        data = bytearray()
        while len(data) < size:
            chunk = self._sock.recv(size - len(data))
            if not chunk:
                return None
            data += chunk
        return bytes(data)

    def sendall(self, data: bytes | memoryview) -> None:
        self._sock.sendall(data)

    def setsockopt(self, *args: Any) -> None:
        self._sock.setsockopt(*args)

    def shutdown(self, how: int) -> None:
        self._sock.shutdown(how)

    def close(self) -> None:
        self._sock.close()
