"""The outline groups a run's events by kind (no Docker: the stream is built with the real
event log): every kind is placed or named as not placed, and a stream cut short still puts
each call under its cell."""

from __future__ import annotations

from rlm_sandbox.events import types as ev
from rlm_sandbox.events.stream import EventLog
from rlm_sandbox.events.tree import build_tree
from rlm_sandbox.view import outline as outline_module
from rlm_sandbox.view.outline import outline, outline_runs


def test_every_event_kind_has_its_place_or_is_named_as_not_placed():
    """A kind added to the events without a place in the outline would vanish from `trace show`
    and the HTML file without a word: it must get a handler or be named in NOT_PLACED."""
    grouping = outline_module._Grouping
    handled = {name.removeprefix("_on_") for name in dir(grouping) if name.startswith("_on_")}
    placed = handled | outline_module._MARKS | outline_module._SANDBOX
    assert set(ev.KINDS) - placed - outline_module.NOT_PLACED == set()
    assert placed & outline_module.NOT_PLACED == set()
    assert handled <= set(ev.KINDS), handled - set(ev.KINDS)  # no handler for a kind that does not exist


def stream() -> list[ev.EventBase]:
    """One run: an iteration whose first cell made two sub-calls (answered out of order), a
    retry, a budget mark, a sandbox start; the trace ends while a second cell's call runs."""
    events: list[ev.EventBase] = []
    run = EventLog([events.append]).recorder()
    run.emit(ev.RunStart, query="q", model="m", sub_model="m", context_type="str")
    run.emit(ev.SandboxStart, provider="docker")
    run.emit(ev.Iteration, iteration=1, model="m")
    run.emit(ev.ModelRequest, call_id="r1", role="root", model="m", purpose="step", iteration=1, messages=[])
    run.emit(ev.ModelRetry, call_id="r1", role="root", model="m", attempt=1, max_attempts=3, wait_s=0.1,
             cause="RateLimitError")
    run.emit(ev.ModelReply, call_id="r1", role="root", model="m", outcome="ok", text="```repl\nx\n```", input_tokens=10,
             output_tokens=5, cost_usd=0.5)
    for call_id in ("s1", "s2"):
        run.emit(ev.ModelRequest, call_id=call_id, role="sub", model="m", purpose="sub_call", iteration=1,
                 messages=[{"role": "user", "content": f"prompt {call_id}"}])
    for call_id in ("s2", "s1"):
        run.emit(ev.ModelReply, call_id=call_id, role="sub", model="m", outcome="ok", text="a", input_tokens=1,
                 output_tokens=1, cost_usd=None)
        run.emit(ev.SubCall, function="llm_query", call_id=call_id, iteration=1, cell=0, model="m", outcome="ok")
    run.emit(ev.Cell, iteration=1, index=0, code="x", shown="")
    run.emit(ev.BudgetExhausted, limit="max_sub_calls", allowed=2, used=2)
    run.emit(ev.ModelRequest, call_id="s3", role="sub", model="m", purpose="sub_call", iteration=1,
             messages=[{"role": "user", "content": "prompt s3"}])  # a second cell's call, cut short
    return events


def test_a_cut_short_stream_puts_each_call_under_its_cell_in_the_order_sent():
    (node,) = build_tree(stream())
    run = outline(node)
    (turn,) = run.turns
    assert turn.label == "iteration 1" and turn.root.reply is not None and len(turn.root.retries) == 1
    first, second = turn.ordered_cells
    assert [call.call_id for call in first.calls] == ["s1", "s2"]  # in the order sent, not answered
    assert first.cell is not None and second.cell is None  # the trace ends while the second cell runs
    assert [(call.call_id, call.answered) for call in second.calls] == [("s3", False)]
    assert [type(mark) for mark in turn.marks] == [ev.BudgetExhausted]
    assert [event.event for event in run.sandbox] == ["sandbox_start"]
    assert (turn.usage.input_tokens, turn.usage.output_tokens, turn.usage.cost_usd) == (12, 7, None)
    assert run.status == "unfinished" and outline_runs(stream())[0].turns[0].cells.keys() == {0, 1}
