"""A warm pool: sandboxes started ahead of time, so taking one costs a context upload
(milliseconds) instead of a container start (a tenth of a second or more).

The pool warms itself on construction, so the obvious ``SandboxPool(size=2)`` then
``take()`` is warm. Pooled sandboxes have never run code. A sandbox is never returned
to the pool after use: a container that ran untrusted code does not serve another task.
``take`` starts a replacement in the background.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from ..errors import SandboxClosed
from . import cleanup
from .base import Callbacks, Context
from .docker import DockerSandbox
from .kernel_sandbox import KernelSandbox

log = logging.getLogger(__name__)


class SandboxPool:
    """``pool = SandboxPool(size=4, limits=...)``, then ``sb = pool.take(context)``.

    The pool starts warming its sandboxes as soon as it is made (``with SandboxPool(...)
    as pool:`` closes it at the end; otherwise call ``close()``). A take that finds no
    idle sandbox waits for one being started rather than starting another from cold.
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
        self._idle: deque[KernelSandbox] = deque()
        self._starter = ThreadPoolExecutor(min(size, 4), thread_name_prefix="rlm-pool")
        self._cond = threading.Condition()
        self._starting = 0  # sandboxes being started for the pool
        self._waiting = 0  # takes waiting for one of those
        self._started = False
        self._closed = False
        self.cold_takes = 0  # takes that found nothing idle or starting, and started a sandbox themselves
        cleanup.install_signal_handlers()
        self.start()

    def start(self) -> "SandboxPool":
        """Start warming ``size`` sandboxes (done on construction; calling it again is harmless)."""
        with self._cond:
            if self._started or self._closed:
                return self
            self._started = True
        for _ in range(self.size):
            self._refill()
        return self

    def take(self, context: Context = None, *, callbacks: Callbacks | None = None,
             exceptions: tuple[str, ...] = ()) -> KernelSandbox:
        """A started sandbox holding ``context``; the caller closes it after use."""
        with self._cond:
            # A start in progress finishes sooner than a new one: wait for it, unless the
            # takes already waiting will use up every start in progress.
            while not self._closed and not self._idle and self._starting > self._waiting:
                self._waiting += 1
                try:
                    self._cond.wait()
                finally:
                    self._waiting -= 1
            if self._closed:
                raise SandboxClosed("this pool was closed")
            sandbox = self._idle.popleft() if self._idle else None
        if sandbox is None:
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
        with self._cond:
            if self._closed:
                return
            self._starting += 1
        self._starter.submit(self._start_one)

    def _start_one(self) -> None:
        sandbox: KernelSandbox | None = None
        try:
            sandbox = self._make().start()
        except Exception as exc:  # noqa: BLE001 - take() will start one itself and raise properly
            log.warning("warm pool could not start a sandbox: %s", exc)
        with self._cond:
            self._starting -= 1
            self._cond.notify_all()
            if sandbox is not None and not self._closed:
                self._idle.append(sandbox)
                return
        if sandbox is not None:
            sandbox.close()

    @property
    def idle(self) -> int:
        return len(self._idle)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._starter.shutdown(wait=True, cancel_futures=True)
        with self._cond:
            idle, self._idle = list(self._idle), deque()
        for sandbox in idle:
            sandbox.close()

    def __enter__(self) -> "SandboxPool":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()
