"""A warm pool: sandboxes started ahead of time, so taking one costs a context upload
(milliseconds) instead of a container start (a tenth of a second or more).

Pooled sandboxes have never run code. A sandbox is never returned to the pool after
use: a container that ran untrusted code does not serve another task. ``take`` starts
a replacement in the background.
"""

from __future__ import annotations

import logging
import queue
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from ..errors import SandboxClosed
from .base import Callbacks, Context
from .docker import DockerSandbox
from .kernel_sandbox import KernelSandbox

log = logging.getLogger(__name__)


class SandboxPool:
    """``with SandboxPool(size=4, limits=...) as pool: sb = pool.take(context)``.

    ``sandbox_kwargs`` go to DockerSandbox (image, limits, runtime, transport, labels);
    ``make`` replaces that with any function returning an unstarted KernelSandbox.
    Use ``pool.sandbox_factory`` as ``RLM(sandbox_factory=...)`` so runs take from it.
    """

    def __init__(self, size: int = 4, *, make: Callable[[], KernelSandbox] | None = None,
                 **sandbox_kwargs: Any) -> None:
        if size < 1:
            raise ValueError("a pool needs size >= 1")
        self.size = size
        self._make = make or (lambda: DockerSandbox(**sandbox_kwargs))
        self._idle: queue.SimpleQueue[KernelSandbox] = queue.SimpleQueue()
        self._starter = ThreadPoolExecutor(min(size, 4), thread_name_prefix="rlm-pool")
        self._lock = threading.Lock()
        self._closed = False
        self.cold_takes = 0  # takes that found the pool empty and started a sandbox themselves

    def start(self) -> "SandboxPool":
        for _ in range(self.size):
            self._refill()
        return self

    def take(self, context: Context = None, *, callbacks: Callbacks | None = None,
             exceptions: tuple[str, ...] = ()) -> KernelSandbox:
        """A started sandbox holding ``context``; the caller closes it after use."""
        if self._closed:
            raise SandboxClosed("this pool was closed")
        try:
            sandbox = self._idle.get_nowait()
        except queue.Empty:
            self.cold_takes += 1
            sandbox = self._make()  # load() starts it, uploading the context once
        else:
            self._refill()
        try:
            return sandbox.load(context, callbacks=callbacks, exceptions=exceptions)
        except BaseException:
            sandbox.close()
            raise

    def sandbox_factory(self, context: Context, callbacks: Callbacks, exceptions: tuple[str, ...],
                        settings: Any) -> KernelSandbox:
        """For ``RLM(sandbox_factory=pool.sandbox_factory)``. The pool's own limits,
        image and runtime apply, not the run's sandbox settings."""
        return self.take(context, callbacks=callbacks, exceptions=exceptions)

    def _refill(self) -> None:
        with self._lock:
            if not self._closed:
                self._starter.submit(self._start_one)

    def _start_one(self) -> None:
        try:
            sandbox = self._make().start()
        except Exception as exc:  # noqa: BLE001 - take() will start one itself and raise properly
            log.warning("warm pool could not start a sandbox: %s", exc)
            return
        with self._lock:
            if not self._closed:
                self._idle.put(sandbox)
                return
        sandbox.close()

    @property
    def idle(self) -> int:
        return self._idle.qsize()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._starter.shutdown(wait=True, cancel_futures=True)
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return

    def __enter__(self) -> "SandboxPool":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
