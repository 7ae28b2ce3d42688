"""A run's events grouped the way people read a run: turns, cells, and what each cell called.

Both viewers (``trace show`` and the HTML file) render this outline, so they agree on what
belongs where: each root-model turn (an ``iteration``, or the final answer-now request),
the cells its reply ran, and under each cell the sub-calls, tool calls and child runs it
made; tokens and cost per turn with running totals. It is built from the event stream alone
and copes with a stream cut short: a cell that was still running, a call never answered.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..events import types as ev
from ..events.tree import RunNode, build_tree
from .marks import MARK_KINDS


@dataclass
class Usage:
    """Tokens and dollars; ``cost_usd`` is None once any priced-unknown call is counted;
    ``cached_input_tokens`` is the part of ``input_tokens`` read from prompt caches."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    cached_input_tokens: int = 0

    def add_reply(self, reply: ev.ModelReply | None) -> None:
        if reply is None:
            return
        self.input_tokens += reply.input_tokens
        self.output_tokens += reply.output_tokens
        self.cached_input_tokens += reply.cached_input_tokens
        if reply.cost_usd is None and (reply.input_tokens or reply.output_tokens):
            self.cost_usd = None  # unknown, never $0
        elif self.cost_usd is not None:
            self.cost_usd += reply.cost_usd or 0.0

    def add(self, other: "Usage") -> None:
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_input_tokens += other.cached_input_tokens
        self.cost_usd = None if self.cost_usd is None or other.cost_usd is None else self.cost_usd + other.cost_usd

    def copy(self) -> "Usage":
        return Usage(self.input_tokens, self.output_tokens, self.cost_usd, self.cached_input_tokens)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass
class Call:
    """One model call: its request, live retries and reply; for a sub-call, the ``sub_call``."""

    call_id: str | None
    request: ev.ModelRequest | None = None
    reply: ev.ModelReply | None = None
    retries: list[ev.ModelRetry] = field(default_factory=list)
    sub_call: ev.SubCall | None = None

    @property
    def prompt(self) -> str:
        messages = self.request.messages if self.request else []
        return str(messages[-1].get("content", "")) if messages else ""

    @property
    def answered(self) -> bool:
        return self.reply is not None and self.reply.outcome == "ok"


@dataclass
class CellRun:
    """One code block of a reply, and everything it called. ``cell`` is None when the trace
    ends while it runs."""

    index: int
    cell: ev.Cell | None = None
    calls: list[Call] = field(default_factory=list)
    tools: list[ev.ToolCall] = field(default_factory=list)
    children: list["RunOutline"] = field(default_factory=list)


@dataclass
class Turn:
    """One root-model turn of a run: the request, the reply, the cells it ran."""

    iteration: int
    purpose: str = "step"  # or "answer_now"
    root: Call = field(default_factory=lambda: Call(None))
    cells: dict[int, CellRun] = field(default_factory=dict)
    marks: list[Any] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    total: Usage = field(default_factory=Usage)  # running total of the run up to this turn

    @property
    def label(self) -> str:
        return "answer now" if self.purpose == "answer_now" else f"iteration {self.iteration}"

    def cell(self, index: int | None) -> CellRun:
        index = index or 0
        if index not in self.cells:
            self.cells[index] = CellRun(index)
        return self.cells[index]

    @property
    def ordered_cells(self) -> list[CellRun]:
        return [self.cells[i] for i in sorted(self.cells)]

    @property
    def retries(self) -> int:
        return len(self.root.retries) + sum(len(c.retries) for cell in self.cells.values() for c in cell.calls)

    @property
    def errors(self) -> int:
        failed = sum(1 for cell in self.cells.values() if cell.cell is not None and cell.cell.error)
        failed += self.root.reply is not None and self.root.reply.outcome == "error"
        return failed + sum(1 for cell in self.cells.values() for c in cell.calls
                            if c.sub_call is not None and c.sub_call.outcome != "ok")


@dataclass
class RunOutline:
    """One run (the root or a child) as turns, with its child runs nested under their cells."""

    node: RunNode
    turns: list[Turn] = field(default_factory=list)
    children: list["RunOutline"] = field(default_factory=list)
    sandbox: list[Any] = field(default_factory=list)   # sandbox_start, sandbox_close, image_build
    marks: list[Any] = field(default_factory=list)     # marks before the first turn
    interrupted: ev.RunInterrupted | None = None
    end: ev.ChildRunEnd | None = None                  # from the parent, for a child run
    usage: Usage = field(default_factory=Usage)        # this run and its children

    @property
    def run_id(self) -> str:
        return self.node.run_id

    @property
    def depth(self) -> int:
        return self.node.depth

    @property
    def start(self) -> ev.RunStart | None:
        return self.node.start

    @property
    def final(self) -> ev.Final | None:
        return self.node.final

    @property
    def status(self) -> str:
        """The final status, ``interrupted``, or ``unfinished`` (the trace ends mid-run)."""
        if self.final is not None:
            return self.final.status
        return "interrupted" if self.interrupted is not None else "unfinished"

    @property
    def duration_s(self) -> float:
        if self.final is not None:
            return self.final.duration_s
        events = self.node.events
        return events[-1].t - events[0].t if events else 0.0

    def walk(self) -> list["RunOutline"]:
        return [self, *(run for child in self.children for run in child.walk())]


def outline_runs(events: list[Any]) -> list[RunOutline]:
    """The outlines of the root runs in a stream (normally one)."""
    return [outline(node) for node in build_tree(events)]


def outline(node: RunNode) -> RunOutline:
    """Group one run's events (and, recursively, its children's)."""
    grouping = _Grouping(node)
    for event in node.events:
        grouping.add(event)
    return grouping.finish()


def _kinds(*classes: type[ev.EventBase]) -> frozenset[str]:
    return frozenset(str(cls.model_fields["event"].default) for cls in classes)


_MARKS = _kinds(*MARK_KINDS)
_SANDBOX = _kinds(ev.SandboxStart, ev.SandboxClose, ev.ImageBuild)
#: Kinds the grouping does not place: the run's node holds its start and its final event. A new
#: kind must be placed or named here (tests/test_outline.py checks it), so none is dropped unnoticed.
NOT_PLACED = _kinds(ev.RunStart, ev.Final)


class _Grouping:
    """Folds one run's events into turns and cells, by event kind as ``view.live`` does: one
    ``_on_<event>`` method per kind it places (marks and sandbox events go to one place each);
    ``finish`` places what a cut-short stream left open and adds up the usage."""

    def __init__(self, node: RunNode) -> None:
        self.run = RunOutline(node)
        self.children = {child.run_id: outline(child) for child in node.children}
        self.turns: dict[tuple[int, str], Turn] = {}
        self.calls: dict[str, tuple[Call, Turn]] = {}  # requests not yet matched to a sub_call
        self.current: Turn | None = None

    def add(self, event: ev.Event) -> None:
        kind = event.event
        if kind in _MARKS:
            self._mark(event)
        elif kind in _SANDBOX:
            self.run.sandbox.append(event)
        else:
            handler = getattr(self, f"_on_{kind}", None)
            if handler is not None:
                handler(event)

    def turn_for(self, iteration: int | None) -> Turn:
        """The turn of ``iteration``; without one, the turn running now (turn 0 before any)."""
        if iteration is None:
            if self.current is None:
                self.current = self.turns[(0, "step")] = Turn(0)
            return self.current
        return self.turns.setdefault((iteration, "step"), Turn(iteration))

    # -- one method per event kind -----------------------------------------------------

    def _on_iteration(self, event: ev.Iteration) -> None:
        self.current = self.turn_for(event.iteration)

    def _on_model_request(self, event: ev.ModelRequest) -> None:
        if event.purpose == "sub_call":
            self.calls[event.call_id] = (Call(event.call_id, request=event), self.turn_for(event.iteration))
            return
        turn = self.turn_for(event.iteration)
        if event.purpose == "answer_now":
            iteration = event.iteration or 0
            turn = self.current = self.turns.setdefault((iteration, "answer_now"), Turn(iteration, "answer_now"))
        turn.root = Call(event.call_id, request=event)
        self.calls[event.call_id] = (turn.root, turn)

    def _on_model_retry(self, event: ev.ModelRetry) -> None:
        found = self.calls.get(event.call_id)
        if found is not None:
            found[0].retries.append(event)

    def _on_model_reply(self, event: ev.ModelReply) -> None:
        found = self.calls.get(event.call_id)
        if found is not None:
            found[0].reply = event

    def _on_sub_call(self, event: ev.SubCall) -> None:
        found = self.calls.pop(event.call_id, None) if event.call_id else None
        call = found[0] if found else Call(event.call_id)
        call.sub_call = event
        self.turn_for(event.iteration).cell(event.cell).calls.append(call)

    def _on_tool_call(self, event: ev.ToolCall) -> None:
        self.turn_for(event.iteration).cell(event.cell).tools.append(event)

    def _on_child_run_start(self, event: ev.ChildRunStart) -> None:
        child = self.children.pop(event.child_run_id, None)
        if child is not None:
            self.turn_for(event.iteration).cell(event.cell).children.append(child)
            self.run.children.append(child)

    def _on_child_run_end(self, event: ev.ChildRunEnd) -> None:
        for child in self.run.children:
            if child.run_id == event.child_run_id:
                child.end = event

    def _on_cell(self, event: ev.Cell) -> None:
        self.turn_for(event.iteration).cell(event.index).cell = event

    def _on_run_interrupted(self, event: ev.RunInterrupted) -> None:
        self.run.interrupted = event

    def _mark(self, event: ev.EventBase) -> None:
        where = getattr(event, "iteration", None)
        target = self.turn_for(where) if where is not None else self.current
        (target.marks if target is not None else self.run.marks).append(event)

    # -- the end of the stream ---------------------------------------------------------

    def finish(self) -> RunOutline:
        run = self.run
        self._place_unanswered()
        run.children.extend(self.children.values())  # children whose child_run_start is missing
        run.turns = sorted(self.turns.values(), key=lambda t: (t.iteration, t.purpose == "answer_now"))
        for turn in run.turns:  # in the order they were sent (a batch's answers arrive in any order)
            for cell in turn.cells.values():
                cell.calls.sort(key=_sent_at)
        run.usage = self._usage()
        return run

    def _place_unanswered(self) -> None:
        """Calls whose sub_call never came (the trace ends while they run) go under the cell running then."""
        for call, turn in self.calls.values():
            if call.request is not None and call.request.purpose == "sub_call":
                running = max((i for i, c in turn.cells.items() if c.cell is None), default=None)
                if running is None:
                    running = max(turn.cells, default=-1) + 1
                turn.cell(running).calls.append(call)

    def _usage(self) -> Usage:
        """Each turn's usage and running total; the run's, its orphaned children's included."""
        total = Usage()
        for turn in self.run.turns:
            turn.usage.add_reply(turn.root.reply)
            for cell in turn.cells.values():
                for call in cell.calls:
                    turn.usage.add_reply(call.reply)
                for child in cell.children:
                    turn.usage.add(child.usage)
            total.add(turn.usage)
            turn.total = total.copy()
        for child in self.children.values():
            total.add(child.usage)
        return total


def _sent_at(call: Call) -> int:
    first = call.request or call.sub_call
    return first.seq if first is not None else 0


def money(cost: float | None) -> str:
    """Dollars as the CLI prints them: ``unknown`` when a price is unknown, never $0."""
    if cost is None:
        return "unknown"
    return f"${cost:.4f}" if cost < 100 else f"${cost:,.2f}"


def cached_note(cached_input_tokens: int) -> str:
    """`` (N cached)`` after a token count when some input was read from a prompt cache, else
    nothing: the viewers and the CLI's end-of-run line say it the same way."""
    return f" ({cached_input_tokens:,} cached)" if cached_input_tokens else ""


def tokens(usage: Usage) -> str:
    return f"{usage.input_tokens:,}+{usage.output_tokens:,} tokens{cached_note(usage.cached_input_tokens)}"


def partial_note(run: RunOutline, problems: list[str]) -> str | None:
    """Why the trace is partial, in one sentence, or None when it is whole."""
    reasons = []
    if run.final is None:
        reasons.append("the run was interrupted (Ctrl-C or cancelled) before it finished"
                       if run.interrupted is not None else "the trace ends before the run finished")
    reasons.extend(problems)
    return ("PARTIAL TRACE: " + "; ".join(reasons)) if reasons else None
