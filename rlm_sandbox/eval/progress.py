"""The suite's progress on stderr: a rich bar on a terminal, one plain line per task elsewhere
(CI logs). Both show done, failed and running, the mean score so far, tokens, cost and an ETA;
a plain line also says why a task failed (its error, control characters made visible)."""

from __future__ import annotations

import sys
import time
from statistics import mean
from typing import IO, Any

from ..view.outline import cached_note
from .reports.text import shown
from .results import TaskResult

__all__ = ["SuiteProgress"]


class SuiteProgress:
    """``start(total)``, then ``begin()`` when a task starts and ``done(result)`` when it ends."""

    def __init__(self, *, stream: IO[str] | None = None, rich: bool | None = None, scripted: bool = False,
                 enabled: bool = True) -> None:
        self.stream = stream or sys.stderr
        self.rich = self.stream.isatty() if rich is None else rich
        self.enabled, self.scripted = enabled, scripted
        self.total = self.finished = self.failed = self.running = 0
        self.scores: list[float] = []
        self.tokens = 0
        self.cached = 0  # of the input tokens, read from prompt caches
        self.cost: float | None = 0.0
        self._started = time.monotonic()
        self._bar: Any = None
        self._task: Any = None

    def start(self, total: int, skipped: int = 0) -> None:
        self.total, self._started = total, time.monotonic()
        if not self.enabled:
            return
        label = "eval (SCRIPTED oracle)" if self.scripted else "eval"
        if skipped:
            self._line(f"{skipped} task run(s) already in the output directory are skipped (--force reruns them)")
        if self.rich:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[status]}"), TimeRemainingColumn(),
                                 console=Console(file=self.stream), transient=False)
            self._bar.start()
            self._task = self._bar.add_task(label, total=total, status=self._status())
        else:
            self._line(f"{total} task run(s) to do" + (" (SCRIPTED oracle)" if self.scripted else ""))

    def begin(self) -> None:
        self.running += 1
        self._refresh()

    def done(self, result: TaskResult) -> None:
        self.running -= 1
        self.finished += 1
        self.failed += not result.passed
        self.scores.append(result.score)
        self.tokens += result.input_tokens + result.output_tokens
        self.cached += result.cached_input_tokens
        self.cost = None if self.cost is None or result.cost_usd is None else self.cost + result.cost_usd
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.update(self._task, completed=self.finished, status=self._status())
        else:
            verdict = "passed" if result.passed else ("ERROR" if result.errored else "failed")
            limit = f" ({result.status}: a limit ended it)" if result.limit_hit else ""
            reason = f" ({shown(result.error, 160, keep='')})" if result.error and not result.passed else ""
            self._line(f"[{self.finished}/{self.total}] {shown(result.task_id, keep='')} e{result.epoch} {verdict}"
                       f"{limit}{reason} score={result.score:.2f} {result.duration_s:.1f}s | {self._status()} | "
                       f"ETA {self._eta()}")

    def _refresh(self) -> None:
        if self.enabled and self._bar is not None:
            self._bar.update(self._task, status=self._status())

    def _status(self) -> str:
        score = f"{mean(self.scores):.3f}" if self.scores else "-"
        cost = "unknown" if self.cost is None else f"${self.cost:.4f}"
        return (f"done {self.finished} failed {self.failed} running {self.running} mean {score} "
                f"tokens {self.tokens:,}{cached_note(self.cached)} cost {cost}")

    def _eta(self) -> str:
        if not self.finished:
            return "?"
        left = (time.monotonic() - self._started) / self.finished * (self.total - self.finished)
        return f"{left:.0f}s"

    def _line(self, text: str) -> None:
        self.stream.write(f"rlm-sandbox eval: {text}\n")
        self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
