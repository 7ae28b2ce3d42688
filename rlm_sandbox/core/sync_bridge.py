"""Run coroutines from synchronous code on one long-lived background event loop.

The RLM loop is written once, as async code. ``RLM.run()`` hands it to this loop and
waits, which works whether or not the caller already has an event loop of its own
(a notebook, a web handler), and keeps litellm on one loop for the whole process
instead of a new one per run.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Coroutine, TypeVar

T = TypeVar("T")

#: How long an interrupted run gets to clean up (close its sandbox) before we return.
CANCEL_GRACE_S = 10.0

_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="rlm-portal", daemon=True).start()
            _loop = loop
        return _loop


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to completion on the background loop and return its result."""
    loop = _background_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coroutine.close()
        raise RuntimeError("run_sync() was called from inside the rlm-sandbox event loop; await the "
                           "async API (arun) there instead")
    finished = threading.Event()

    async def tracked() -> T:
        try:
            return await coroutine
        finally:
            finished.set()

    future = asyncio.run_coroutine_threadsafe(tracked(), loop)
    try:
        return future.result()
    except BaseException:
        # Ctrl-C (or any error here) must not leave the run going on in the background:
        # cancel it and give it a moment to close its sandbox.
        if not future.done():
            future.cancel()
            finished.wait(CANCEL_GRACE_S)
        raise
