"""One model call, the same at every depth: reserve, announce, send, settle, report.

The root loop (each iteration's request) and the broker (each ``llm_query``) make model
calls the same way, so the way is written once, here:

1. **reserve** what the call may spend at most on the shared ledger (only when a token or
   cost limit is set; counting tokens and waiting for room block, so it runs on a thread);
2. **announce** it as a ``model_request`` event;
3. **send** it through the run's ``ModelClient``, bounded as its caller says (the run's
   remaining wall time for a root call; the run's and the process's concurrency slots for a
   sub-call), with each retry reported as a ``model_retry`` event as it happens;
4. **settle** the reservation with what the provider reports (a failed call keeps what it
   was still charged), and report the outcome as a ``model_reply`` event.

A failure at any step after the announcement (a provider error, a cancel, the wall time
running out) is settled and reported before it is raised, so every ``model_request`` in a
trace has its ``model_reply`` and the ledger holds no reservation for a call that ended.
"""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from typing import Any, NoReturn

from ..errors import LLMError
from ..events import types as ev
from ..events.stream import RunRecorder, new_call_id
from ..models.base import Completion
from ..models.runtime import on_model_loop
from .budget import Reservation
from .concurrency import PROCESS_SLOTS
from .metering import Meter
from .recording import failure_fields, retries_of, retry_reporter

Message = dict[str, Any]


def error_text(exc: BaseException) -> str:
    """A failed call's error as events and cells show it (an LLMError's message says it all)."""
    return str(exc) if isinstance(exc, LLMError) else f"{type(exc).__name__}: {exc}"


class ModelCall:
    """One request to one model, from its reservation to its ``model_reply``.

    ``what`` names the call in a budget refusal ("root model call", "child root call",
    "llm_query"); ``role`` is the role its events and usage are counted under.
    """

    def __init__(self, meter: Meter, events: RunRecorder, *, role: ev.Role, model: str,
                 messages: list[Message], max_tokens: int, what: str, conversation: bool = False) -> None:
        self.meter, self.events = meter, events
        self.role, self.model, self.what = role, model, what
        self.conversation = conversation  # a root request, which may carry cache marks
        self.messages, self.max_tokens = messages, max_tokens
        self.call_id = new_call_id()
        self.reservation: Reservation | None = None
        self._began = time.monotonic()

    async def reserve(self) -> None:
        """Set aside what the call may spend at most, or raise BudgetExceeded (may wait for
        calls in flight to settle). Nothing is held when no token or cost limit is set."""
        if self.meter.limits_spend:
            self.reservation = await asyncio.to_thread(self.meter.reserve, self.what, self.model, self.messages,
                                                       self.max_tokens)

    def announce(self, *, purpose: str, iteration: int | None, base: int = 0) -> None:
        """The ``model_request`` event: the messages from ``base`` on (the root loop sends only
        what is new since its previous request) and the tokens reserved."""
        self.events.emit(ev.ModelRequest, call_id=self.call_id, role=self.role, model=self.model, purpose=purpose,
                         iteration=iteration, base=base, messages=self.messages[base:],
                         reserved_tokens=self.reservation.tokens if self.reservation else None)
        self._began = time.monotonic()

    async def send(self, *, within_wall_time: bool = False,
                   run_slots: AbstractAsyncContextManager[Any] | None = None,
                   process_slots: int | None = None) -> Completion:
        """Send the call, settle it and report it; a failure is settled and reported, then raised.

        ``within_wall_time``: the call may take only what is left of the run's wall-time
        budget (it then raises BudgetExceeded, or LLMError if the clock was reset meanwhile).
        ``run_slots``: a slot of the run's own (its semaphore) is held while the call waits and runs;
        ``process_slots``: so is one of at most that many across the process.
        """
        remaining = self.meter.ledger.remaining_time_s() if within_wall_time else None
        try:
            if remaining is not None and remaining <= 0:
                raise asyncio.TimeoutError  # never sent: nothing to wait for
            async with AsyncExitStack() as held:
                if run_slots is not None:
                    await held.enter_async_context(run_slots)
                call = self._call(process_slots)
                # the process's limiter lives on the model loop: a call that takes its slot goes there
                completion = await asyncio.wait_for(call if process_slots is None else on_model_loop(call),
                                                    timeout=remaining)
        except BaseException as exc:
            if within_wall_time and isinstance(exc, asyncio.TimeoutError):
                self._timed_out(sent=remaining is None or remaining > 0)
            self.meter.settle_failure(self.reservation, self.role, self.model, exc)
            self._reply_failed(error_text(exc), failure_fields(exc))
            raise
        self.meter.settle(self.reservation, self.role, completion)
        self.events.emit(ev.ModelReply, call_id=self.call_id, role=self.role, model=self.model, outcome="ok",
                         text=completion.text, finish_reason=completion.finish_reason,
                         input_tokens=completion.input_tokens, output_tokens=completion.output_tokens,
                         cached_input_tokens=completion.cached_input_tokens,
                         cache_write_tokens=completion.cache_write_tokens,
                         cost_usd=completion.cost_usd, latency_s=round(completion.duration_s, 4),
                         attempts=completion.retries + 1, retries=retries_of(completion.retry_causes))
        return completion

    async def _call(self, process_slots: int | None) -> Completion:
        """The client's call itself, holding a process slot when asked (then on the model loop)."""
        meter = self.meter
        async with AsyncExitStack() as held:
            if process_slots is not None:
                await held.enter_async_context(PROCESS_SLOTS.slot(process_slots))
            return await meter.llm.acomplete(self.model, self.messages, max_tokens=self.max_tokens,
                                             price=meter.custom_price(self.model),
                                             on_retry=retry_reporter(self.events, self.call_id, self.role, self.model),
                                             **meter.call_options(self.role, model=self.model,
                                                                  conversation=self.conversation))

    def _timed_out(self, *, sent: bool) -> NoReturn:
        """The run's wall time ran out before or during the call: settled, reported, raised."""
        self.meter.settle_failure(self.reservation, self.role, self.model, asyncio.TimeoutError(), sent=sent)
        self._reply_failed("the wall-time budget ran out " + ("during" if sent else "before") + " the call",
                           {**failure_fields(None), "attempts": 1 if sent else 0})
        self.meter.ledger.check_time()  # raises: the wall-time budget ran out
        raise LLMError("the root model did not answer within the wall-time budget", model=self.model,
                       transient=True) from None

    def _reply_failed(self, error: str, fields: dict[str, Any]) -> None:
        self.events.emit(ev.ModelReply, call_id=self.call_id, role=self.role, model=self.model, outcome="error",
                         error=error, latency_s=round(time.monotonic() - self._began, 4), **fields)
