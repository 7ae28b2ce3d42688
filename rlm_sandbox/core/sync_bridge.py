"""Run coroutines from synchronous code on one long-lived background event loop.

The RLM loop is written once, as async code. ``RLM.run()`` hands it to this loop and
waits, which works whether or not the caller already has an event loop of its own
(a notebook, a web handler). The loop is litellm's one loop of the process
(:func:`rlm_sandbox.models.model_loop`), so a sync run's model calls need no hop.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Coroutine, TypeVar

from ..models.runtime import model_loop

T = TypeVar("T")

#: How long an interrupted run gets to clean up (close its sandbox) before we return.
CANCEL_GRACE_S = 10.0


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
