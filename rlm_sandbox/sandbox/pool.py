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
from .spec import SandboxSpec

log = logging.getLogger(__name__)


class SandboxPool:
    """``pool = SandboxPool(size=4, limits=...)``, then ``sb = pool.take(context)``.

    The pool starts warming its sandboxes as soon as it is made (``with SandboxPool(...)
    as pool:`` closes it at the end; otherwise call ``close()``). A take that finds no
    idle sandbox waits for one being started rather than starting another from cold.
    The pool's sandboxes are made from ``spec`` (a :class:`SandboxSpec`), or from
    ``sandbox_kwargs`` given to DockerSandbox (image, limits, runtime, transport, labels,
    client); ``make`` replaces both with any function returning an unstarted sandbox.

    Use ``pool.sandbox_factory`` as ``RLM(sandbox_factory=...)`` so runs take from it. A run
    whose sandbox settings differ from the pool's (say ``memory="2g"`` from a 1g pool) is not
    given a pooled sandbox with the wrong limits: it gets one of its own, made from its
    settings, and ``mismatched_takes`` counts it (a warning says what differed, once).
    """

    def __init__(self, size: int = 4, *, spec: SandboxSpec | None = None,
                 make: Callable[[], KernelSandbox] | None = None, **sandbox_kwargs: Any) -> None:
        if size < 1:
            raise ValueError("a pool needs size >= 1")
        if spec is not None and (make is not None or sandbox_kwargs):
            raise TypeError("give the pool's sandboxes as spec=, make= or DockerSandbox options, not several")
        self.size = size
        if make is not None:
            self.spec: SandboxSpec | None = None  # unknown: every run takes what the pool has
            self._make = make
        elif spec is not None:
            self.spec, self._make = spec, spec.create  # type: ignore[assignment]  # create() makes a KernelSandbox
        else:
            self.spec = SandboxSpec(**{key: value for key, value in sandbox_kwargs.items() if key != "client"})
            self._make = lambda: DockerSandbox(**sandbox_kwargs)
        self.mismatched_takes = 0  # runs whose settings the pool's sandboxes did not match
        self._warned = False
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
                    self._cond.wait(0.25)  # timed, so a Ctrl-C flagged by another thread is seen
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
                        settings: Any) -> Any:
        """For ``RLM(sandbox_factory=pool.sandbox_factory)``: a pooled sandbox when the run's
        sandbox settings are the pool's, else a new one made from the run's settings."""
        wanted: SandboxSpec = settings.sandbox_spec()
        differences = self._differences(wanted)
        if not differences:
            return self.take(context, callbacks=callbacks, exceptions=exceptions)
        with self._cond:
            self.mismatched_takes += 1
            warn, self._warned = not self._warned, True
        if warn:
            log.warning("a run's sandbox settings differ from the pool's (%s): it gets a sandbox of its own, "
                        "made from its settings; give the pool the run's settings to take from it",
                        "; ".join(differences))
        return wanted.model_copy(update={"labels": {**wanted.labels, **(self.spec.labels if self.spec else {})}}) \
            .create(context, callbacks=callbacks, exceptions=exceptions)

    def _differences(self, wanted: SandboxSpec) -> list[str]:
        """What differs between the pool's sandboxes and ``wanted`` (labels aside)."""
        if self.spec is None:
            return []
        ours, theirs = self.spec, wanted
        found = [f"{name}: {getattr(theirs, name)!r} wanted, {getattr(ours, name)!r} pooled"
                 for name in ("provider", "runtime", "transport") if getattr(ours, name) != getattr(theirs, name)]
        if _image(ours) != _image(theirs):
            found.append(f"image: {_image(theirs)!r} wanted, {_image(ours)!r} pooled")
        for name, value in theirs.limits.model_dump().items():
            pooled = getattr(ours.limits, name)
            if name != "max_callback_concurrency" and value != pooled:
                found.append(f"{name}: {value!r} wanted, {pooled!r} pooled")
        return found

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


def _image(spec: SandboxSpec) -> str | None:
    """The image a spec's sandboxes run (None, for docker, means the one built for this kernel)."""
    if spec.provider == "docker" and spec.image is None:
        from .image import default_image_tag

        return default_image_tag()
    return spec.image
