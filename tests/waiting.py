"""One way for a test to wait for something to happen: poll a predicate until it holds.

Tests used to sleep "long enough for it to be happening by now", which fails on a loaded
machine and wastes time on an idle one. A test waits instead for the thing itself: a host
callback that sets an event, a container that exists, a line in a file. The timeout is only
a guard against a hang, so it is generous, and running into it names what never happened.
"""

from __future__ import annotations

import subprocess
import threading
import time
from typing import Callable, TypeVar

T = TypeVar("T")

#: How long a test waits for a thing that normally takes well under a second; long because
#: the machine may be shared, and reaching it is a failure (never a pass).
BARRIER_S = 60.0


class NeverHappened(AssertionError):
    """What a test waited for did not happen within the guard's time."""


def wait_until(predicate: Callable[[], T], timeout: float = BARRIER_S, what: str = "the condition", *,
               proc: subprocess.Popen[str] | None = None, interval: float = 0.01) -> T:
    """Call ``predicate`` until it returns something truthy, and return that.

    ``what`` says what was awaited, for the failure message. ``proc``, when given, is a
    process the awaited thing depends on: if it exits first, waiting longer is pointless, so
    the failure says so at once with the end of its stderr (when it was captured).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            stderr = proc.stderr.read()[-3000:] if proc.stderr is not None else ""
            raise NeverHappened(f"the process ended (exit {proc.returncode}) before {what}: {stderr}")
        if time.monotonic() > deadline:
            raise NeverHappened(f"{what} did not happen within {timeout:g} s")
        time.sleep(interval)


def wait_for_event(event: threading.Event, timeout: float = BARRIER_S, what: str = "the event") -> None:
    """Block on a barrier that a host callback sets; fail naming it if it is never set."""
    if not event.wait(timeout):
        raise NeverHappened(f"{what} did not happen within {timeout:g} s")
