"""One model call, the same for the root loop and for sub-calls (issue 18, part 1): reserved,
announced, sent, settled and reported in one place; and the root model's context window,
learnt from the settings, litellm or a refusal. A scripted model through litellm's real
code path; no sandbox."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from rlm_sandbox.config import Settings
from rlm_sandbox.core.budget import Ledger
from rlm_sandbox.core.compaction import ContextWindow, DoesNotFit
from rlm_sandbox.core.metering import Meter
from rlm_sandbox.core.model_call import ModelCall
from rlm_sandbox.errors import BudgetExceeded, LLMContextWindowExceeded
from rlm_sandbox.events.stream import EventLog
from rlm_sandbox.models import LLMClient
from rlm_sandbox.testing import ScriptedModel


def call_with(model: ScriptedModel, **budget: Any) -> tuple[ModelCall, Ledger, list[Any]]:
    settings = Settings.from_options(model=model.model, **budget)
    ledger = Ledger(settings.budget())
    events: list[Any] = []
    log = EventLog([events.append])
    call = ModelCall(Meter(ledger, LLMClient(backoff_initial_s=0.01), settings), log.recorder(), role="sub",
                     model=model.model, messages=[{"role": "user", "content": "hello"}], max_tokens=50,
                     what="llm_query")
    return call, ledger, events


def test_a_call_is_reserved_announced_settled_and_reported_once():
    with ScriptedModel(["hi there"]) as model:
        call, ledger, events = call_with(model, max_total_tokens=10_000)

        async def whole() -> str:
            await call.reserve()
            assert call.reservation is not None and call.reservation.open
            call.announce(purpose="sub_call", iteration=3)
            return (await call.send()).text

        assert asyncio.run(whole()) == "hi there"
    request, reply = events
    assert (request["event"], request["call_id"], request["iteration"], request["reserved_tokens"]) == \
        ("model_request", call.call_id, 3, call.reservation.tokens)
    assert (reply["event"], reply["call_id"], reply["outcome"], reply["text"]) == \
        ("model_reply", call.call_id, "ok", "hi there")
    assert not call.reservation.open and [u.calls for u in ledger.usage] == [1]


def test_a_call_with_no_wall_time_left_is_never_sent_and_ends_the_budget():
    with ScriptedModel(["never"]) as model:
        call, ledger, events = call_with(model, max_wall_time_s=1.0)
        ledger.started = time.monotonic() - 5  # the run's wall time is used up
        call.announce(purpose="step", iteration=1)
        with pytest.raises(BudgetExceeded, match="max_wall_time_s"):
            asyncio.run(call.send(within_wall_time=True))
        assert model.call_count == 0
    reply = events[-1]
    assert (reply["outcome"], reply["attempts"], reply["error"]) == \
        ("error", 0, "the wall-time budget ran out before the call")
    assert [(u.calls, u.failed_calls, u.attempts) for u in ledger.usage] == [(0, 1, 0)]


class NeverFree:
    """A run's slot that is never free; ``waiting`` is set once a call waits for it (the barrier)."""

    def __init__(self) -> None:
        self.waiting = asyncio.Event()

    async def __aenter__(self) -> None:
        self.waiting.set()
        await asyncio.Event().wait()

    async def __aexit__(self, *exc_info: object) -> None:
        pass


def test_a_call_cancelled_while_it_waits_for_a_slot_is_settled_and_reported():
    with ScriptedModel(["never"]) as model:
        call, ledger, events = call_with(model, max_total_tokens=10_000)

        async def cancelled() -> None:
            await call.reserve()
            call.announce(purpose="sub_call", iteration=None)
            slot = NeverFree()
            waiting = asyncio.ensure_future(call.send(run_slots=slot))
            await slot.waiting.wait()
            waiting.cancel()
            with pytest.raises(asyncio.CancelledError):
                await waiting

        asyncio.run(cancelled())
        assert model.call_count == 0
    assert [e["event"] for e in events] == ["model_request", "model_reply"]
    assert events[-1]["outcome"] == "error" and events[-1]["error"].startswith("CancelledError")
    assert not call.reservation.open and [u.failed_calls for u in ledger.usage] == [1]


def test_the_context_window_comes_from_the_setting_then_litellm_then_a_refusal():
    assert ContextWindow("m", 8000, lambda model: 100).known() == (8000, "setting")
    assert ContextWindow("m", None, lambda model: 100).known() == (100, "litellm")
    window = ContextWindow("m", None, lambda model: None)
    assert window.known() is None and window.prompt_limit(500, 0.8) is None and window.reply_limit(10, 500) == 500
    window.learn("This model's maximum context length is 4096 tokens", sent_tokens=5000)
    assert window.known() == (4096, "provider")
    window.learn("the prompt was too long", sent_tokens=3000)  # states none: a little below what was sent
    assert window.known() == (2700, "provider")
    window.learn("the prompt was too long", sent_tokens=4000)  # at or above what we believed: shrink it
    assert window.known() == (2160, "provider")
    assert window.prompt_limit(500, 0.5) == (2160 - 500) // 2 and window.reply_limit(2000, 500) == 160


def test_a_conversation_that_cannot_fit_says_which_window_and_what_to_change():
    problem = ContextWindow("m", 2048, lambda model: None).does_not_fit(DoesNotFit(3000, 1500), None)
    assert isinstance(problem, LLMContextWindowExceeded) and not problem.transient
    assert "(2,048 tokens, from the context_window setting)" in str(problem) and "lower max_tokens" in str(problem)
