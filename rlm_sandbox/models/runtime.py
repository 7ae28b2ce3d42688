"""Where litellm lives in this process: imported once, offline, and used on one event loop.

Importing litellm takes seconds, so nothing imports it until a run needs a model
(``import rlm_sandbox``, ``--help``, ``doctor``, ``gc`` and ``image`` never do), and a run
imports it before its clock starts, on a worker thread rather than on an event loop.

litellm reads ``LITELLM_LOCAL_MODEL_COST_MAP`` once, when it is first imported: unset, it
fetches its price list over the network. :func:`load_litellm` sets the variable for that
import only (unless the user set it) and puts it back afterwards, so this package has no
import-time side effect and a user's own later ``litellm.register_model(url)`` still works.

litellm keeps process-wide state bound to the event loop that first used it (its logging
worker task, cached async HTTP clients). Used from two loops, it rebinds and drops the old
loop's pending task ("Task was destroyed but it is pending!"). So every litellm call in this
process runs on one long-lived background loop, :func:`model_loop`, whatever loop the caller
is on; the sync API drives whole runs on that same loop, so they need no hop at all.
"""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from typing import Any, Coroutine, TypeVar

__all__ = ["load_litellm", "model_loop", "on_model_loop"]

T = TypeVar("T")
_COST_MAP_VARIABLE = "LITELLM_LOCAL_MODEL_COST_MAP"
_import_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def load_litellm() -> Any:
    """litellm, imported on first use with its bundled price map, and quiet on stdout.

    Typed ``Any``, as litellm itself is to mypy here (pyproject's ``[tool.mypy]``): a ``ModuleType``
    would refuse the module attributes we set (``custom_provider_map``).

    litellm prints banners ("Provider List: ...") on stdout for errors we catch and explain
    ourselves; they would corrupt the CLI's output, hence ``suppress_debug_info``.
    """
    module = sys.modules.get("litellm")
    if module is not None and getattr(module, "suppress_debug_info", False):
        return module
    with _import_lock:
        forced = "litellm" not in sys.modules and _COST_MAP_VARIABLE not in os.environ
        if forced:
            os.environ[_COST_MAP_VARIABLE] = "True"
        try:
            import litellm
        finally:
            if forced:
                os.environ.pop(_COST_MAP_VARIABLE, None)
        litellm.suppress_debug_info = True
        return litellm


def model_loop() -> asyncio.AbstractEventLoop:
    """The process's one event loop for litellm, on a daemon thread (started on first use)."""
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="rlm-portal", daemon=True).start()
            _loop = loop
        return _loop


async def on_model_loop(coroutine: Coroutine[Any, Any, T]) -> T:
    """Await ``coroutine`` on :func:`model_loop`, from any loop; cancelling the caller cancels it."""
    loop = model_loop()
    if asyncio.get_running_loop() is loop:
        return await coroutine
    return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, loop))
