"""Removing live sandboxes when the process ends: at exit, and on SIGTERM or SIGHUP.

Python closes sandboxes at a normal exit and after Ctrl-C (``atexit``), but a termination
signal left to its default action kills the process on the spot, leaving containers and
socket directories behind. So, where SIGTERM or SIGHUP still has its default action (the
program installed no handler of its own), a handler removes every live sandbox and then
lets the signal take its default effect: the process still dies of it, with the exit
status its parent expects. A program's own handler is never replaced; Python only lets
the main thread install one, so this happens the first time a sandbox, a pool or an
``RLM`` is made there. SIGKILL cannot be caught: the kernel exits when the host's socket
closes, and ``rlm-sandbox gc`` (:func:`reap_orphans`) removes the stopped container.
"""

from __future__ import annotations

import atexit
import os
import signal
import threading
import time
import weakref
from typing import Any, Protocol

#: Signals whose default action would otherwise leave sandboxes behind.
SIGNALS = (signal.SIGTERM, signal.SIGHUP)
#: How long the handler waits for removals before the process dies anyway.
REMOVE_WAIT_S = 10.0


class Removable(Protocol):
    def close(self) -> None: ...
    def remove_now(self) -> None: ...


_live: "weakref.WeakSet[Removable]" = weakref.WeakSet()
_lock = threading.Lock()
_owner_pid: int | None = None  # a forked child must not remove its parent's sandboxes


def register(sandbox: Removable) -> None:
    """Track a started sandbox so it is removed at exit or on a termination signal."""
    global _owner_pid
    with _lock:
        if _owner_pid != os.getpid():
            _owner_pid = os.getpid()
            _live.clear()
            atexit.register(close_all)
        _live.add(sandbox)
    install_signal_handlers()


def unregister(sandbox: Removable) -> None:
    _live.discard(sandbox)


def close_all() -> None:
    """Close every live sandbox of this process (at interpreter exit)."""
    if _owner_pid == os.getpid():
        for sandbox in list(_live):
            sandbox.close()


def install_signal_handlers() -> None:
    """Install the removing handler for SIGTERM and SIGHUP where they still have their
    default action. Cheap and idempotent; a no-op outside the main thread."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in SIGNALS:
        try:
            if signal.getsignal(signum) is signal.SIG_DFL:
                signal.signal(signum, _remove_all_then_die)
        except (ValueError, OSError):  # not the main interpreter, or a platform without it
            return


def _remove_all_then_die(signum: int, frame: Any) -> None:
    """Remove every live sandbox, in parallel and within REMOVE_WAIT_S, then die of the
    signal. Removal runs on other threads and takes no sandbox lock: the signal may have
    interrupted this thread while it held one."""
    if _owner_pid == os.getpid():
        workers = [threading.Thread(target=sandbox.remove_now, name="rlm-sandbox-remove", daemon=True)
                   for sandbox in list(_live)]
        for worker in workers:
            worker.start()
        deadline = time.monotonic() + REMOVE_WAIT_S
        for worker in workers:
            worker.join(max(deadline - time.monotonic(), 0))
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
