"""The event stream of one root run and all its children, and the listeners that read it.

One ``EventLog`` per root run; every run in the tree (the root, each ``rlm_query`` child)
emits through its own ``RunRecorder`` into that log, so the stream is flat, in emission
order, with one clock. Emitting builds the typed event, numbers it within its run, keeps
it (``RLMResult.trajectory``) and hands it to each listener, in order, under one lock:
listeners never see events out of order or interleaved, whatever thread emits.

A listener that raises is reported once on stderr and detached, so a broken progress
display cannot break a run, and its failure is not silently swallowed either.
"""

from __future__ import annotations

import sys
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any, Callable, TextIO, TypeVar

from .types import EventBase

E = TypeVar("E", bound=EventBase)
Listener = Callable[[EventBase], None]
#: Masks secrets in a value before it goes into an event (strings, lists, dicts).
Masker = Callable[[Any], Any]


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def new_call_id() -> str:
    """Links a model_request to its model_reply (and a sub_call to both)."""
    return uuid.uuid4().hex[:12]


class EventLog:
    """Collects the events of a run tree and calls the listeners."""

    def __init__(self, listeners: list[Listener] | tuple[Listener, ...] = (), *,
                 mask: Masker | None = None, stderr: TextIO | None = None) -> None:
        self._listeners = list(listeners)
        self._mask = mask
        self._stderr = stderr
        self._lock = threading.RLock()
        self._started = time.monotonic()
        self._seq: dict[str, int] = {}
        self.events: list[EventBase] = []

    def restart_clock(self) -> None:
        """Count ``t`` from now: the run starts after its setup (importing litellm)."""
        self._started = time.monotonic()

    @property
    def elapsed_s(self) -> float:
        """Seconds since the root run started (the ``t`` of an event emitted now)."""
        return time.monotonic() - self._started

    def add_listener(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.append(listener)

    def recorder(self, *, parent: "RunRecorder | None" = None, run_id: str | None = None) -> "RunRecorder":
        """A recorder for a new run: the root (no parent) or a child of ``parent``."""
        return RunRecorder(self, run_id or new_run_id(), parent.run_id if parent else None,
                           parent.depth + 1 if parent else 0)

    def emit(self, recorder: "RunRecorder", kind: type[E], fields: dict[str, Any]) -> E:
        if self._mask is not None:
            fields = {key: self._mask(value) for key, value in fields.items()}
        with self._lock:
            seq = self._seq.get(recorder.run_id, 0)
            self._seq[recorder.run_id] = seq + 1
            event = kind(run_id=recorder.run_id, parent_run_id=recorder.parent_run_id, depth=recorder.depth,
                         seq=seq, ts=datetime.now(timezone.utc), t=round(self.elapsed_s, 6), **fields)
            self.events.append(event)
            for listener in list(self._listeners):
                try:
                    listener(event)
                except Exception as exc:  # noqa: BLE001 - reported, then the listener is detached
                    self._detach(listener, exc)
        return event

    def _detach(self, listener: Listener, exc: Exception) -> None:
        self._listeners = [other for other in self._listeners if other is not listener]
        name = getattr(listener, "__qualname__", None) or type(listener).__name__
        stream = self._stderr or sys.stderr
        try:
            stream.write(f"rlm-sandbox: event listener {name} raised {type(exc).__name__}: {exc}; "
                         "it was detached and gets no more events\n")
            stream.flush()
        except (OSError, ValueError):
            pass


class RunRecorder:
    """What one run emits through: its id, its parent and its depth, bound to the log."""

    def __init__(self, log: EventLog, run_id: str, parent_run_id: str | None, depth: int) -> None:
        self.log, self.run_id, self.parent_run_id, self.depth = log, run_id, parent_run_id, depth

    def emit(self, kind: type[E], **fields: Any) -> E:
        return self.log.emit(self, kind, fields)

    def child(self) -> "RunRecorder":
        return self.log.recorder(parent=self)
