"""At most N runs at once, at most M waiting; anyone beyond that is told when to come back.

Runs hold a container, memory and model spend, so the server admits ``max_concurrent`` at a
time. Up to ``max_queue`` more wait, in arrival order; a request past that gets a 429 at
once with ``Retry-After`` (the recent runs' mean duration), instead of waiting unboundedly.
A waiting request whose client leaves gives up its place (its task is cancelled).
"""

from __future__ import annotations

import asyncio
import math
from collections import deque

from .errors import APIError


class Admission:
    """``async with admission.ticket():`` around a run."""

    def __init__(self, max_concurrent: int, max_queue: int) -> None:
        if max_concurrent < 1 or max_queue < 0:
            raise ValueError("max_concurrent must be >= 1 and max_queue >= 0")
        self.max_concurrent, self.max_queue = max_concurrent, max_queue
        self._slots = asyncio.Semaphore(max_concurrent)
        self.running = 0
        self.waiting = 0
        self._durations: deque[float] = deque(maxlen=20)

    def retry_after_s(self) -> int:
        """Seconds a refused client should wait: about one recent run (5 s before any ended)."""
        if not self._durations:
            return 5
        return max(1, math.ceil(sum(self._durations) / len(self._durations)))

    def finished(self, duration_s: float) -> None:
        self._durations.append(duration_s)

    def ticket(self) -> "Ticket":
        """A place in the queue, or a 429 now when the queue is full."""
        if self.running + self.waiting >= self.max_concurrent + self.max_queue:
            wait = self.retry_after_s()
            raise APIError(429, f"the server is busy: {self.running} runs are going and {self.waiting} waiting "
                                f"(--max-concurrent {self.max_concurrent}, --max-queue {self.max_queue}); "
                                f"retry in {wait} s", code="server_busy", headers={"Retry-After": str(wait)})
        self.waiting += 1
        return Ticket(self)


class Ticket:
    """One request's place: ``async with ticket:`` waits for a slot and holds it. Counted as
    waiting from the moment it is given, so requests arriving together cannot all slip past
    the queue's limit."""

    def __init__(self, admission: Admission) -> None:
        self._admission = admission
        self._state = "waiting"

    async def __aenter__(self) -> None:
        admission = self._admission
        try:
            await admission._slots.acquire()
        except BaseException:
            self.close()
            raise
        admission.waiting -= 1
        admission.running += 1
        self._state = "running"

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        admission = self._admission
        if self._state == "waiting":
            admission.waiting -= 1
        elif self._state == "running":
            admission.running -= 1
            admission._slots.release()
        self._state = "done"
