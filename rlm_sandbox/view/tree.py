"""``rlm-sandbox trace show``: a trace as a tree in the terminal (rich).

Turns of the root model, each with its reply (code highlighted), the cells it ran with
their output, and under each cell the sub-calls, tool calls and child runs it made (child
runs nested as runs of their own); tokens and cost per turn with running totals; errors,
restarts, retries and budget stops marked. Long text is clipped unless ``full``. A
partial trace (an interrupted run, a cut file) says so at the top.

The events are cleaned first (``visible_events``): every string a model, a document or a
provider put in them shows its control and bidi characters as escapes, and everything is
drawn as rich ``Text`` or ``Syntax``, never markup, so ``[bold]`` shows as written.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.text import Text
from rich.tree import Tree

from ..fences import RUNNABLE_FENCES, split_fences
from ..events import types as ev
from ..untrusted import visible
from .marks import describe
from .outline import CellRun, Call, RunOutline, Turn, Usage, money, outline_runs, partial_note, tokens
from .visible_events import visible_events

_CLIP = {"code": 30, "output": 12, "reply": 40, "prompt": 4, "answer": 8}  # lines shown without --full
_THEME = "ansi_dark"


class TreeOptions:
    """What to show: ``depth`` (deepest child run drawn in full), ``iteration`` (one turn of
    the root run), ``full`` (no clipping)."""

    def __init__(self, depth: int | None = None, iteration: int | None = None, full: bool = False) -> None:
        self.depth, self.iteration, self.full = depth, iteration, full


def render_trace(events: list[Any], problems: list[str] | None = None, *,
                 options: TreeOptions | None = None) -> RenderableType:
    """Everything ``trace show`` prints for a trace's events."""
    options = options or TreeOptions()
    parts: list[RenderableType] = []
    for run in outline_runs(visible_events(events)):
        note = partial_note(run, [visible(problem) for problem in problems or []])
        if note:
            parts.append(Text(note, style="bold red"))
        parts.append(_header(run))
        parts.append(_run_tree(run, options))
    if not parts:
        parts.append(Text("the trace holds no events", style="bold red"))
    return Group(*parts)


def _header(run: RunOutline) -> RenderableType:
    start, final = run.start, run.final
    lines = Text()
    lines.append(f"run {run.run_id}", style="bold")
    lines.append(f" · {run.status}", style=_status_style(run.status))
    if final is not None:
        lines.append(f" · answer from {final.answer_from}"
                     + ("" if final.answer_from == "final" else " (NOT a FINAL answer)"))
    lines.append("\n")
    if start is not None:
        lines.append(f"query: {_clip_line(start.query, 300)}\n")
        lines.append(f"models: root {start.model}, sub {start.sub_model} · context {start.context_type}"
                     + (f" of {start.context_length:,}" if start.context_length is not None else "") + "\n")
    if final is not None:
        lines.append("answer: ", style="bold")
        lines.append(_clip_line(final.answer, 500) or "(none)")
        lines.append("\n")
        if final.error:
            lines.append(f"error: {_clip_line(final.error, 300)}\n", style="red")
    turns = sum(1 for turn in run.turns if turn.purpose == "step")
    lines.append(f"totals: {turns} iteration{'s' * (turns != 1)} · {tokens(run.usage)} · {money(run.usage.cost_usd)}"
                 f" · {run.duration_s:.1f} s")
    return lines


def _run_tree(run: RunOutline, options: TreeOptions, label: Text | None = None) -> Tree:
    tree = Tree(label or Text(f"run {run.run_id} (depth {run.depth}) · {run.status}",
                              style=_status_style(run.status)), guide_style="dim")
    for event in run.sandbox:
        if isinstance(event, ev.ImageBuild) and (event.done or event.step is None):
            tree.add(Text(event.message, style="cyan"))
        elif isinstance(event, ev.SandboxStart) and event.error:
            tree.add(Text(f"sandbox failed to start: {event.error}", style="bold red"))
    for mark in run.marks:
        tree.add(_mark(mark))
    turns = run.turns
    if options.iteration is not None and run.depth == 0:
        turns = [turn for turn in turns if turn.iteration == options.iteration]
        if not turns:
            tree.add(Text(f"no iteration {options.iteration} in this trace (it has "
                          f"{', '.join(str(t.iteration) for t in run.turns if t.purpose == 'step') or 'none'})",
                          style="yellow"))
    for turn in turns:
        _add_turn(tree, turn, options)
    if run.final is not None:
        final = run.final
        tree.add(Text(f"final · {final.status} · answer from {final.answer_from}: "
                      f"{_clip_line(final.answer, 200) or '(none)'}", style=_status_style(final.status)))
    elif run.interrupted is not None:
        tree.add(Text(f"interrupted after {run.interrupted.iterations} iteration(s): no final answer",
                      style="bold red"))
    else:
        tree.add(Text("the trace ends here, before the run finished", style="bold red"))
    return tree


def _add_turn(tree: Tree, turn: Turn, options: TreeOptions) -> None:
    label = Text(turn.label, style="bold")
    label.append(f" · {_usage(turn.usage)} · total {_usage(turn.total)}", style="")
    if turn.retries:
        label.append(f" · {turn.retries} retr{'y' if turn.retries == 1 else 'ies'}", style="yellow")
    if turn.errors:
        label.append(f" · {turn.errors} error{'s' * (turn.errors != 1)}", style="red")
    node = tree.add(label)
    root = turn.root
    if root.reply is not None or root.request is not None:
        node.add(_call_text(root, "model", options)).add(_reply(root, options))
    for cell in turn.ordered_cells:
        _add_cell(node, cell, options)
    for mark in turn.marks:
        node.add(_mark(mark))


def _add_cell(tree: Tree, cell: CellRun, options: TreeOptions) -> None:
    event = cell.cell
    if event is None:
        node = tree.add(Text(f"cell {cell.index + 1} · still running when the trace ends", style="bold red"))
    else:
        status, style = ("ok", "green") if not event.error else (f"error: {_clip_line(event.error, 120)}", "red")
        label = Text(f"cell {cell.index + 1} · ")
        label.append(status, style=style)
        label.append(f" · {event.duration_s:.2f} s")
        for flag, text in ((event.timed_out, "timed out"), (event.restarted, "sandbox restarted"),
                           (event.called_final, "called FINAL")):
            if flag:
                label.append(f" · {text}", style="yellow" if text != "called FINAL" else "green")
        node = tree.add(label)
        node.add(_code(event.code, options))
        output = (event.stdout + (("\n" + event.stderr) if event.stderr else "")).rstrip("\n")
        if output.strip():
            more = f" of {event.stdout_chars:,} chars" if event.stdout_chars > len(event.stdout) else ""
            kept = f", kept in {', '.join(event.offloaded)}" if event.offloaded else ""
            node.add(Group(Text(f"output{more}{kept}", style="dim"),
                           Text(_clip(output, _CLIP["output"], options.full))))
    for call in cell.calls:
        _add_sub_call(node, call, options)
    for tool in cell.tools:
        style = "red" if tool.outcome != "ok" else ""
        node.add(Text(f"tool {tool.tool} · {tool.outcome} · {tool.duration_s:.2f} s"
                      + (f": {tool.error}" if tool.error else ""), style=style))
    for child in cell.children:
        _add_child(node, child, options)


def _add_sub_call(tree: Tree, call: Call, options: TreeOptions) -> None:
    sub = call.sub_call
    function = sub.function if sub else "llm_query"
    where = f" [{sub.batch_index + 1}/{sub.batch_size}]" if sub and sub.batch_index is not None else ""
    node = tree.add(_call_text(call, f"{function}{where}", options))
    if call.request is not None:
        node.add(Text("prompt: " + _clip(call.prompt, _CLIP["prompt"], options.full), style="dim"))
    if call.answered and call.reply is not None:  # answered says so; mypy needs it said here
        node.add(Text("answer: " + _clip(call.reply.text or "", _CLIP["answer"], options.full)))
    elif sub is not None and sub.error:
        node.add(Text(f"error: {_clip_line(sub.error, 300)}", style="red"))


def _add_child(tree: Tree, child: RunOutline, options: TreeOptions) -> None:
    query = child.start.query if child.start else "?"
    label = Text(f"child run {child.run_id} · {child.status} · {_usage(child.usage)} · {child.duration_s:.1f} s: ",
                 style=_status_style(child.status))
    label.append(_clip_line(query, 120), style="italic")
    if options.depth is not None and child.depth > options.depth:
        answer = child.final.answer if child.final else ""
        tree.add(label).add(Text(f"answer: {_clip_line(answer, 200)} (deeper than --depth {options.depth}: "
                                 "not expanded)", style="dim"))
        return
    tree.add(_run_tree(child, TreeOptions(options.depth, None, options.full), label))


def _call_text(call: Call, what: str, options: TreeOptions) -> Text:
    """One line for a model call: who, outcome, tokens, cost, latency, retries."""
    reply = call.reply
    model = reply.model if reply else (call.request.model if call.request else
                                       call.sub_call.model if call.sub_call else "?")
    text = Text(f"{what} · {model}")
    if reply is None:
        sub = call.sub_call
        if sub is not None and sub.outcome == "refused":
            text.append(f" · refused: {_clip_line(sub.error or '', 160)}", style="yellow")
        else:
            text.append(" · no answer in the trace", style="red")
    else:
        usage = Usage()
        usage.add_reply(reply)
        text.append(f" · {reply.outcome}", style="green" if reply.outcome == "ok" else "red")
        text.append(f" · {_usage(usage)} · {reply.latency_s:.2f} s")
        if reply.error:
            text.append(f" · {_clip_line(reply.error, 160)}", style="red")
    retries = call.retries or (reply.retries if reply else [])
    for retry in retries:
        cause, wait = retry.cause, retry.wait_s
        text.append(f"\n  retried after {_clip_line(cause, 100)} (waited {wait:.1f} s)", style="yellow")
    return text


def _reply(call: Call, options: TreeOptions) -> RenderableType:
    if call.reply is None or call.reply.text is None:
        return Text("(no reply)", style="dim")
    pieces: list[RenderableType] = []
    for language, text in split_fences(call.reply.text):
        if language is None:
            pieces.append(Text(_clip(text.strip("\n"), _CLIP["reply"], options.full)))
        else:
            pieces.append(_code(text, options, language if language not in RUNNABLE_FENCES else "python"))
    return Group(*pieces) if pieces else Text("(empty reply)", style="dim")


def _code(code: str, options: TreeOptions, language: str = "python") -> Syntax:
    return Syntax(_clip(code.rstrip("\n"), _CLIP["code"], options.full), language or "text", theme=_THEME,
                  word_wrap=True, background_color="default")


#: How loud each kind of mark is drawn.
_MARK_STYLES = {"budget": "bold yellow", "restart": "bold red", "nudge": "yellow", "schema": "yellow", "info": "cyan"}


def _mark(event: Any) -> Text:
    mark = describe(event)
    return Text(_clip_line(mark.text, 240), style=_MARK_STYLES[mark.kind])


def _usage(usage: Usage) -> str:
    return f"{tokens(usage)} · {money(usage.cost_usd)}"


def _status_style(status: str) -> str:
    return {"completed": "bold green", "interrupted": "bold red", "unfinished": "bold red",
            "error": "bold red"}.get(status, "bold yellow")


def _clip(text: str, lines: int, full: bool) -> str:
    if full:
        return text
    split = text.splitlines()
    chars = lines * 160
    if len(split) <= lines and len(text) <= chars:
        return text
    shown = "\n".join(split[:lines])[:chars]
    return f"{shown}\n… {len(text) - len(shown):,} more chars (--full shows everything)"


def _clip_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
