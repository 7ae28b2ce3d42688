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


def marked_stream() -> list[ev.EventBase]:
    """A run whose history was folded, whose reply was cut off, whose FINAL was refused and which stalled."""
    events: list[ev.EventBase] = []
    run = EventLog([events.append]).recorder()
    run.emit(ev.RunStart, query="q", model="m", sub_model="m", context_type="str")
    run.emit(ev.Iteration, iteration=5, model="m")
    run.emit(ev.Compaction, iteration=5, reason="threshold", window=8000, window_source="setting", limit=6800,
             tokens_before=7000, tokens_after=3100, folded=[1, 2, 3], kept=[4])
    run.emit(ev.ReplyCut, iteration=5, finish_reason="length", max_tokens=512, unclosed_block=True, blocks_run=1)
    run.emit(ev.FinalRejected, iteration=5, reason="no_such_variable", problem="no variable `answer`")
    run.emit(ev.Stalled, rule="idle_replies", count=3, setting="stall_idle_replies=3")
    return events


def test_folds_cut_replies_refused_finals_and_stalls_show_in_both_viewers():
    """They were left unplaced, so `trace show` and the HTML file never said the history was
    folded (which also ends a provider's cached prefix) or why a FINAL was not taken."""
    from rich.console import Console

    from rlm_sandbox.view.html import render_html
    from rlm_sandbox.view.tree import render_trace

    (run,) = outline_runs(marked_stream())
    (turn,) = run.turns
    assert [type(mark).__name__ for mark in turn.marks] == ["Compaction", "ReplyCut", "FinalRejected", "Stalled"]
    console = Console(width=400, record=True, color_system=None)
    console.print(render_trace(marked_stream()))
    shown = console.export_text()
    page = render_html(marked_stream())
    for expected in ("history compacted (it reached compact_at): iterations 1-3 folded into a digest, "
                     "7,000 -> 3,100 tokens of 6,800 allowed (window 8,000, from setting)",
                     "the reply was cut off at max_tokens=512; its last block was not closed, so it did not run "
                     "(1 block(s) ran)",
                     "FINAL not accepted: the variable does not exist",
                     "stalled: replies ran no code 3 times (stall_idle_replies=3)"):
        assert expected in shown
        assert expected.replace("->", "-&gt;") in page
