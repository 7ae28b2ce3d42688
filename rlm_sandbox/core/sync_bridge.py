"""Run coroutines from synchronous code on one long-lived background event loop.

The RLM loop is written once, as async code. ``RLM.run()`` hands it to this loop and
waits, which works whether or not the caller already has an event loop of its own
(a notebook, a web handler). The loop is litellm's one loop of the process
(:func:`rlm_sandbox.models.model_loop`), so a sync run's model calls need no hop.

Ctrl-C lands in the waiting thread. The run is then cancelled on its loop and waited for
until it has closed its sandbox and written its last event: returning earlier would let the
program exit while the run still cleans up on a daemon thread, against an interpreter that
is shutting down (no executor takes work any more; the trace loses its end).

The waiting thread never blocks without a timeout. A process-directed SIGINT may be taken
by any thread that does not block it (a native library's worker, a Python worker);
CPython's handler then only flags it for the main thread, which notices at its next
bytecode. A main thread asleep in an untimed ``Event.wait()`` never runs one, so that Ctrl-C
would be lost until the run ended by itself: waiting in short slices keeps every Ctrl-C
seen within ``POLL_S``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any, Coroutine, Generic, TypeVar

from ..models.runtime import model_loop

T = TypeVar("T")

#: How long an interrupted run gets to clean up (close its sandbox) before we return anyway.
#: A second Ctrl-C stops the wait at once.
CANCEL_GRACE_S = 60.0
#: The slice the waiting thread sleeps in, so a signal flagged by another thread is seen.
POLL_S = 0.1


class _Driven(Generic[T]):
    """A coroutine run as a task on ``loop``, driven from another thread.

    Everything that touches the task happens on the loop, in the order it was asked for
    (``call_soon_threadsafe`` keeps order): a cancel asked for before the task exists still
    finds it, or finds the coroutine never started and closes it (no "never awaited" warning).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]) -> None:
        self._loop, self._coroutine = loop, coroutine
        self._task: asyncio.Task[T] | None = None
        self.ended = threading.Event()

    def start(self) -> None:
        self._loop.call_soon_threadsafe(self._begin)

    def cancel(self) -> None:
        self._loop.call_soon_threadsafe(self._cancel)

    def result(self) -> T:
        assert self._task is not None and self._task.done()
        return self._task.result()

    def _begin(self) -> None:
        if self.ended.is_set():  # cancelled before it began
            return
        self._task = self._loop.create_task(self._coroutine)
        self._task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[T]) -> None:
        if not task.cancelled():
            task.exception()  # retrieved here: no "Task exception was never retrieved" if nobody waits
        self.ended.set()

    def _cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()
        elif not self.ended.is_set():
            self._coroutine.close()
            self.ended.set()


def _wait(ended: threading.Event, timeout: float | None = None) -> None:
    """Wait for ``ended`` (at most ``timeout`` seconds) in slices of ``POLL_S``, so that a
    KeyboardInterrupt flagged meanwhile is raised here (see the module's docstring)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while not ended.wait(POLL_S):
        if deadline is not None and time.monotonic() >= deadline:
            return


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion on the background loop and return its result."""
    loop = model_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coroutine.close()
        raise RuntimeError("run_sync() was called from inside the rlm-sandbox event loop; await the "
                           "async API (arun) there instead")
    driven = _Driven(loop, coroutine)
    try:
        driven.start()
        _wait(driven.ended)
    except BaseException:
        # Ctrl-C (or any error here) must not leave the run going on in the background:
        # cancel it and let it close its sandbox and end its trace before we go on.
        driven.cancel()
        _wait(driven.ended, CANCEL_GRACE_S)
        raise
    return driven.result()
