"""What a kernel may cost the host: time charged to a cell, and memory.

Time: waiting on a host call is not charged to the cell's timeout (a slow model must not
kill a cell), except the first QUICK_CALL_S of each call, so a loop of quick or refused
calls is charged in full. Memory: every line from the kernel is at most
:func:`message_cap` long and is refused before parsing when :func:`parse_cost` says
parsing it could cost more than 4 times that; :func:`host_memory_bound` is the resulting
figure per sandbox (docs/DECISIONS.md adds it up).
"""

from __future__ import annotations

import itertools
import re
import threading
import time

#: The first this-many seconds of every host call count toward the cell timeout.
QUICK_CALL_S = 0.05
#: The most one JSON value costs as Python objects (a one-key dict with its slot: ~210 B
#: for 3 separators), so counting separators bounds what parsing a line allocates.
VALUE_BYTES = 80

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_SEPARATORS = (b",", b":", b"[", b"{")


def message_cap(max_value_bytes: int) -> int:
    """The longest line the host reads from the kernel: the largest value ``get`` may
    return, plus room for the rest of the reply."""
    return max_value_bytes + (1 << 20)


def host_memory_bound(max_value_bytes: int) -> int:
    """The most memory the kernel of one sandbox can make the host hold, whatever it sends:
    12 lines' worth (docs/DECISIONS.md adds it up), 205 MiB at the default max_value_bytes."""
    return 12 * message_cap(max_value_bytes) + (1 << 20)


def parse_cost(line: bytes, *, outside_strings: bool = False) -> int:
    """An upper bound on the memory ``json.loads(line)`` allocates.

    Every value costs at most VALUE_BYTES and is counted by a separator (``, : [ {``);
    every byte of text costs at most 1 byte, or 4 when the line is not ASCII (a string
    holding one astral character is stored at 4 bytes per character). With
    ``outside_strings`` separators inside strings are not counted (slower, exact).
    """
    text = _STRING.sub(b'""', line) if outside_strings else line
    values = 1 + sum(text.count(separator) for separator in _SEPARATORS)
    return (1 if line.isascii() else 4) * len(line) + VALUE_BYTES * values + 4096


class CellClock:
    """The time a request is charged: wall time since it started, minus the time during
    which some host call had been in flight for longer than ``quick``."""

    def __init__(self, quick: float = QUICK_CALL_S) -> None:
        self._lock = threading.Lock()
        self._quick = quick
        self._start = self._settled = time.monotonic()
        self._excused = 0.0
        self._calls: dict[int, float] = {}  # call -> when it started
        self._ids = itertools.count()

    def _settle(self, now: float) -> None:
        """Add the excused time since the last change; the set of calls was constant."""
        if self._calls:
            excused_from = max(min(self._calls.values()) + self._quick, self._settled)
            if now > excused_from:
                self._excused += now - excused_from
        self._settled = now

    def call_started(self) -> int:
        with self._lock:
            now = time.monotonic()
            self._settle(now)
            token = next(self._ids)
            self._calls[token] = now
            return token

    def call_ended(self, token: int) -> None:
        with self._lock:
            self._settle(time.monotonic())
            self._calls.pop(token, None)

    @property
    def busy(self) -> bool:
        return bool(self._calls)

    def elapsed(self) -> float:
        with self._lock:
            now = time.monotonic()
            self._settle(now)
            return now - self._start - self._excused
