"""The live status of a run on a terminal (rich), built from the event stream as it comes.

``LiveState`` folds events into what is happening now (no drawing, so it is easy to test);
``LiveDisplay`` is an ``EventLog`` listener that draws that state with ``rich.live`` on
stderr: iteration i of max, what the run is doing (waiting for the root model, running cell
k, sub-calls in flight, retrying after a rate limit with a countdown, building the image),
tokens, cost (or "unknown"), elapsed time, a bar per budget that has a limit, and one
indented line per child run while it runs. The display is transient: it leaves a clean
screen, and the CLI prints its one-line summary after it. With ``log=True`` each event is
also printed, whole, above the live region (rich keeps the two apart).

Every line it draws goes through :func:`rlm_sandbox.untrusted.visible` (a query, a child's
query, a provider's error text may hold ESC/OSC sequences) and is a rich ``Text``, never
markup, so ``[bold]`` in a query shows as written.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from ..fences import read_fences
from ..events import types as ev
from ..events.printer import VerbosePrinter
from ..untrusted import visible
from .outline import cached_note, money

#: Budget bars, in order: (setting, label). A bar is drawn only for a limit that is set.
BUDGETS = (("max_iterations", "iterations"), ("max_sub_calls", "sub-calls"), ("max_total_tokens", "tokens"),
           ("max_cost_usd", "cost"), ("max_wall_time_s", "wall time"))


@dataclass
class RunStatus:
    """What one run (the root or a child) is doing now."""

    run_id: str
    depth: int
    query: str = ""
    iteration: int = 0
    activity: str = "starting"
    cells: int = 0          # code blocks in the current reply
    cells_done: int = 0
    in_flight: set[str] = field(default_factory=set)  # sub-call ids sent, not yet answered
    calls_done: int = 0
    root_calls: set[str] = field(default_factory=set)
    retry: ev.ModelRetry | None = None
    retry_at: float = 0.0   # elapsed time when the retry was announced
    finished: bool = False


class LiveState:
    """Everything the live display shows, folded from events; ``clock`` is for tests."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._anchor: float | None = None   # clock value at which the root run's t was 0
        self.runs: dict[str, RunStatus] = {}
        self.settings: dict[str, Any] = {}
        self.image: ev.ImageBuild | None = None
        self.input_tokens = self.output_tokens = self.cached_input_tokens = 0
        self.cost_usd: float | None = 0.0
        self.sub_calls = 0
        self.budget: dict[str, Any] = {}    # the ledger's own figures, once a budget event carries them
        self.ended_at: float | None = None

    # -- folding events --------------------------------------------------------------

    def update(self, event: Any) -> None:
        if self._anchor is None:
            self._anchor = self._clock() - event.t
        run = self.runs.get(event.run_id)
        if run is None:
            run = self.runs[event.run_id] = RunStatus(event.run_id, event.depth)
        handler = getattr(self, f"_on_{event.event}", None)
        if handler is not None:
            handler(run, event)

    def _on_run_start(self, run: RunStatus, event: ev.RunStart) -> None:
        run.query = event.query
        if event.depth == 0:
            self.settings = dict(event.settings)

    def _on_image_build(self, run: RunStatus, event: ev.ImageBuild) -> None:
        self.image = None if event.done else event

    def _on_iteration(self, run: RunStatus, event: ev.Iteration) -> None:
        run.iteration, run.cells, run.cells_done = event.iteration, 0, 0
        run.activity = "waiting for the root model" if run.depth == 0 else "waiting for its model"

    def _on_model_request(self, run: RunStatus, event: ev.ModelRequest) -> None:
        if event.purpose == "sub_call":
            run.in_flight.add(event.call_id)
            return
        run.root_calls.add(event.call_id)
        if event.purpose == "answer_now":
            run.activity = "asking the model for its best answer now"

    def _on_model_retry(self, run: RunStatus, event: ev.ModelRetry) -> None:
        run.retry, run.retry_at = event, self.elapsed()

    def _on_model_reply(self, run: RunStatus, event: ev.ModelReply) -> None:
        self.input_tokens += event.input_tokens
        self.output_tokens += event.output_tokens
        self.cached_input_tokens += event.cached_input_tokens
        if event.cost_usd is None and (event.input_tokens or event.output_tokens):
            self.cost_usd = None
        elif self.cost_usd is not None:
            self.cost_usd += event.cost_usd or 0.0
        if run.retry is not None and run.retry.call_id == event.call_id:
            run.retry = None
        if event.call_id in run.in_flight:
            run.in_flight.discard(event.call_id)
            return
        if event.call_id in run.root_calls and event.outcome == "ok":
            run.cells, run.cells_done = len(read_fences(event.text or "").code_blocks), 0
            run.activity = self._cell_activity(run)

    def _on_sub_call(self, run: RunStatus, event: ev.SubCall) -> None:
        run.calls_done += 1
        if event.outcome != "refused":
            self.sub_calls += 1

    def _on_tool_call(self, run: RunStatus, event: ev.ToolCall) -> None:
        if event.outcome != "refused":
            self.sub_calls += 1

    def _on_child_run_start(self, run: RunStatus, event: ev.ChildRunStart) -> None:
        self.sub_calls += 1

    def _on_cell(self, run: RunStatus, event: ev.Cell) -> None:
        run.cells_done = event.index + 1
        run.activity = self._cell_activity(run)

    def _on_budget_exhausted(self, run: RunStatus, event: ev.BudgetExhausted) -> None:
        self.budget = dict(event.budget)
        run.activity = f"out of budget ({event.limit}); finishing"

    def _on_final(self, run: RunStatus, event: ev.Final) -> None:
        run.finished, run.activity = True, f"ended: {event.status}"
        if event.depth == 0:
            self.ended_at = self.elapsed()

    def _on_run_interrupted(self, run: RunStatus, event: ev.RunInterrupted) -> None:
        run.finished, run.activity = True, "interrupted"
        if event.depth == 0:
            self.ended_at = self.elapsed()

    @staticmethod
    def _cell_activity(run: RunStatus) -> str:
        if run.cells_done < run.cells:
            return f"running cell {run.cells_done + 1} of {run.cells}"
        return "reading the reply" if run.cells == 0 else "reading the results"

    # -- what to show ------------------------------------------------------------------

    def elapsed(self) -> float:
        if self.ended_at is not None:
            return self.ended_at
        return 0.0 if self._anchor is None else self._clock() - self._anchor

    def describe(self, run: RunStatus) -> str:
        """One line: iteration i of max, what is happening, sub-calls, a retry's countdown."""
        parts = []
        if run.iteration:
            limit = self.settings.get("max_iterations")
            parts.append(f"iteration {run.iteration}" + (f" of {limit}" if limit else ""))
        parts.append(run.activity)
        if run.in_flight or run.calls_done:
            parts.append(f"{len(run.in_flight)} sub-call{'s' * (len(run.in_flight) != 1)} in flight, "
                         f"{run.calls_done} done")
        if run.retry is not None:
            retry = run.retry
            left = max(retry.wait_s - (self.elapsed() - run.retry_at), 0.0)
            who = "the root model" if retry.call_id in run.root_calls else "a sub-call"
            parts.append(f"retrying {who} after {_cause_kind(retry.cause)}, attempt {retry.attempt + 1} of "
                         f"{retry.max_attempts}, in {left:.1f} s")
        return " · ".join(parts)

    def budgets(self) -> list[tuple[str, float, float, str]]:
        """(label, used, limit, text) for every budget with a limit."""
        used = {"max_iterations": self._root_iterations(), "max_sub_calls": self.sub_calls,
                "max_total_tokens": self.input_tokens + self.output_tokens,
                "max_cost_usd": self.cost_usd, "max_wall_time_s": self.elapsed()}
        rows = []
        for name, label in BUDGETS:
            limit = self.settings.get(name)
            if limit is None:
                continue
            value = used[name]
            if value is None:
                rows.append((label, 0.0, float(limit), f"unknown of {money(float(limit))}"))
                continue
            if name == "max_cost_usd":
                text = f"{money(value)} of {money(float(limit))}"
            elif name == "max_wall_time_s":
                text = f"{value:.0f} of {float(limit):.0f} s"
            else:
                text = f"{value:,} of {limit:,}"
            rows.append((label, float(value), float(limit), text))
        return rows

    def _root_iterations(self) -> int:
        return next((run.iteration for run in self.runs.values() if run.depth == 0), 0)

    def totals(self) -> str:
        return (f"tokens {self.input_tokens:,} in{cached_note(self.cached_input_tokens)}, {self.output_tokens:,} out · "
                f"cost {money(self.cost_usd)} · "
                f"{self.elapsed():.1f} s")


def _cause_kind(cause: str) -> str:
    """'RateLimitError: 429 ...' -> 'a rate limit' (what a person calls it)."""
    kind = cause.split(":", 1)[0]
    names = {"RateLimitError": "a rate limit", "Timeout": "a timeout", "APIConnectionError": "a connection error",
             "ServiceUnavailableError": "a 503", "InternalServerError": "a server error"}
    return names.get(kind, kind or "an error")


#: Styles of the event log's lines (``log=True``), by event kind.
_LOG_STYLES = {"iteration": "bold", "final": "bold green", "run_interrupted": "bold red",
               "budget_exhausted": "yellow", "model_retry": "yellow", "sandbox_restart": "red",
               "image_build": "cyan", "run_start": "cyan"}


class LiveDisplay:
    """Draws ``LiveState`` on a rich console (stderr) while a run goes; an ``EventLog`` listener.

    Use it as a context manager around the run. ``log=True`` also prints each event (the
    ``-v`` text, styled) above the live region, never interleaved with it.
    """

    def __init__(self, console: Console | None = None, *, log: bool = False, refresh_per_second: float = 8) -> None:
        self.console = console or Console(stderr=True)
        self.state = LiveState()
        self._log = VerbosePrinter() if log else None
        self._lock = threading.Lock()
        self._spinner = Spinner("dots")
        self._live = Live(get_renderable=self.render, console=self.console, transient=True,
                          refresh_per_second=refresh_per_second, redirect_stdout=False, redirect_stderr=False)

    def __call__(self, event: ev.EventBase) -> None:
        with self._lock:
            self.state.update(event)
        if self._log is not None:
            text = self._log.format(event)
            if text:
                self.console.print(Text(text.rstrip("\n"), style=_LOG_STYLES.get(getattr(event, "event", ""), "")),
                                   highlight=False, markup=False, soft_wrap=True)

    def __enter__(self) -> "LiveDisplay":
        self._live.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._live.stop()

    def render(self) -> RenderableType:
        with self._lock:
            state = self.state
            lines: list[RenderableType] = []
            if state.image is not None:
                image = state.image
                step = f", step {image.step}/{image.steps}" if image.step else ""
                lines.append(_line(f"building the sandbox image (one time{step})", "cyan"))
            roots = [run for run in state.runs.values() if run.depth == 0]
            head = Table.grid(padding=(0, 1))
            head.add_row(self._spinner, _line(state.describe(roots[0]) if roots else "starting", "bold"))
            lines.append(head)
            for run in state.runs.values():
                if run.depth > 0 and not run.finished:
                    lines.append(_line(f"{'  ' * run.depth}↳ child run {_clip(run.query, 40)}: {state.describe(run)}",
                                       "dim"))
            lines.append(_line(state.totals()))
            bars = state.budgets()
            if bars:
                grid = Table.grid(padding=(0, 1))
                for label, used, limit, text in bars:
                    bar = ProgressBar(total=max(limit, 1e-9), completed=min(used, limit), width=24)
                    grid.add_row(_line(label), bar, _line(text))
                lines.append(grid)
            return Group(*lines)


def _line(text: str, style: str = "") -> Text:
    """One line of the live region: control and bidi characters shown as escapes, no markup."""
    return Text(visible(text, keep=""), style=style)


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
