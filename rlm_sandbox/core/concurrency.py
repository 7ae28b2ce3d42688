"""Sub-calls in flight across every run of this process.

Each run bounds its own sub-calls (``max_concurrency``); this bounds them all together,
so a hundred runs in one process do not hit a provider with a thousand calls at once.
Every model call of the process runs on one event loop (``models.runtime.model_loop``),
so the limiter lives there: a counter and a condition, where each caller waits until
fewer calls than ITS run's ``max_process_concurrency`` are in flight. Runs that ask for
different ceilings share one count, and none waits for a limit it did not set.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from typing import AsyncIterator


class ProcessSlots:
    def __init__(self) -> None:
        self._in_flight = 0
        self._changed: asyncio.Condition | None = None

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @asynccontextmanager
    async def slot(self, limit: int) -> AsyncIterator[None]:
        """Hold one of at most ``limit`` slots. Must run on the model loop."""
        if self._changed is None:
            self._changed = asyncio.Condition()
        async with self._changed:
            await self._changed.wait_for(lambda: self._in_flight < limit)
            self._in_flight += 1
        try:
            yield
        finally:
            async with self._changed:
                self._in_flight -= 1
                self._changed.notify_all()


#: The one limiter of this process (it is, by definition, per process).
PROCESS_SLOTS = ProcessSlots()
