"""Plain-text progress on stderr (``verbose=True`` and ``-v``), one event at a time.

Each event becomes one line, or one header line and an indented block (a model reply, a
cell's output), written whole by one ``write`` under a lock every printer shares, so
events from concurrent sub-calls, threads or runs never interleave. It only reads
events; the rich live display of the CLI lives in ``rlm_sandbox.view``.

Everything it prints is made visible with :func:`rlm_sandbox.untrusted.visible` first: a
reply, a cell's output or a query may hold ESC, OSC or bidi sequences a model (or a document
it quoted) wrote, and a terminal must show them, not obey them.
"""

from __future__ import annotations

import sys
import threading
from typing import Any, TextIO

from ..untrusted import visible
from . import types as ev

_BASE_FIELDS = frozenset(ev.EventBase.model_fields) | {"event"}


def _short(text: str, limit: int = 300) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 20] + f" ... [{len(text):,} chars]"


def _one_line(text: str, limit: int) -> str:
    """Clipped to one line: newlines are shown as \\n, so a line never spills into the next."""
    return _short(text, limit).replace("\r", "").replace("\n", "\\n")


class VerbosePrinter:
    """An ``EventLog`` listener printing readable progress lines."""

    _lock = threading.Lock()  # one for every printer: they share stderr

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._prompts: dict[str, str] = {}   # sub-call prompts and replies by call_id, until
        self._replies: dict[str, str] = {}   # their sub_call event prints them together

    def __call__(self, event: ev.EventBase) -> None:
        text = self.format(event)
        if not text:
            return
        stream = self._stream or sys.stderr
        with self._lock:
            stream.write(text)
            stream.flush()

    def format(self, event: Any) -> str:
        """The text for one event (whole lines, each ending in a newline), or "" to skip it."""
        line, block = self._describe(event)
        if line is None:
            return ""
        indent = "  " * event.depth
        line = visible(line, keep="")
        lines = visible(block).splitlines()
        if len(lines) == 1 and len(line) + len(lines[0]) <= 120:  # short enough to stay on one line
            line, lines = f"{line} {lines[0]}", []
        text = f"{indent}[rlm {event.t:7.2f}s] {line}\n"
        return text + "".join(f"{indent}    | {block_line}\n" for block_line in lines)

    def _describe(self, event: Any) -> tuple[str | None, str]:
        if isinstance(event, ev.RunStart):
            kind = "run" if event.depth == 0 else "child run"
            return (f"{kind} started: model {event.model}, sub-model {event.sub_model}, context "
                    f"{event.context_type}" + (f" of {event.context_length:,}" if event.context_length else "")
                    + "; query:",
                    _short(event.query, 200))
        if isinstance(event, ev.SandboxStart):
            where = " ".join(x for x in (event.provider, event.runtime, event.transport) if x)
            if event.error:
                return f"sandbox ({where}) failed to start: {_one_line(event.error, 200)}", ""
            return f"sandbox ({where}) started in {event.duration_s:.2f}s", ""
        if isinstance(event, ev.ImageBuild):
            return _one_line(event.message, 200), ""
        if isinstance(event, ev.ModelRetry):
            who = "sub-call" if event.role == "sub" else "model call"
            return (f"{who} {event.model}: attempt {event.attempt} of {event.max_attempts} failed "
                    f"({_one_line(event.cause, 120)}); retrying in {event.wait_s:.1f}s"), ""
        if isinstance(event, ev.SandboxRestart):
            return f"sandbox restarted: {_one_line(event.reason, 200)}", ""
        if isinstance(event, ev.SandboxClose):
            return None, ""
        if isinstance(event, ev.ChildRunStart):
            return None, ""  # the child's own run_start follows
        if isinstance(event, ev.ChildRunEnd):
            return f"child run {event.child_run_id} ended ({event.status}) in {event.duration_s:.2f}s", ""
        if isinstance(event, ev.Iteration):
            if event.purpose == "answer_now":
                return f"-- answer-now call ({event.model}): the run ended without FINAL", ""
            return f"-- iteration {event.iteration} ({event.model})", ""
        if isinstance(event, ev.ModelRequest):
            if event.role == "sub" and event.purpose == "sub_call" and event.messages:
                self._prompts[event.call_id] = str(event.messages[-1].get("content", ""))
            return None, ""
        if isinstance(event, ev.ModelReply):
            return self._reply(event)
        if isinstance(event, ev.Cell):
            status = "error: " + _one_line(event.error, 200) if event.error else "ok"
            return (f"cell {event.iteration}.{event.index + 1} [{status}] {event.duration_s:.2f}s, output:",
                    _short(event.stdout, 200) or "(none)")
        if isinstance(event, ev.SubCall):
            prompt = self._prompts.pop(event.call_id or "", "")
            answer = self._replies.pop(event.call_id or "", "") or event.error or ""
            where = f" [{event.batch_index + 1}/{event.batch_size}]" if event.batch_index is not None else ""
            return (f"sub-call{where} {event.model} ({event.outcome}): {_one_line(prompt, 80)} -> "
                    f"{_one_line(answer, 80)}", "")
        if isinstance(event, ev.Final):
            return f"FINAL ({event.status}, answer from {event.answer_from}):", _short(event.answer, 200)
        fields = ", ".join(f"{key}={value}" for key, value in event.model_dump().items() if key not in _BASE_FIELDS)
        return f"{event.event}: " + _one_line(fields, 200), ""

    def _reply(self, event: ev.ModelReply) -> tuple[str | None, str]:
        retried = ""
        if event.retries:
            last = event.retries[-1]
            retried = f" (after {len(event.retries)} retr{'y' if len(event.retries) == 1 else 'ies'}; last: " \
                      f"{_one_line(last.cause, 80)})"
        if event.role == "sub" and event.outcome == "ok" and event.call_id in self._prompts:
            self._replies[event.call_id] = event.text or ""
            return (f"sub-call retried{retried}", "") if retried else (None, "")
        if event.outcome != "ok":
            return f"model call failed{retried}: {_one_line(event.error or '', 200)}", ""
        return f"model{retried}:", _short(event.text or "")
