"""The trajectory of a run: a list of events, streamed to listeners as they happen.

Events are plain dicts (``{"event": "cell", "t": 1.23, ...}``) so they serialise to
JSONL as they are, and a progress display, a log file or a test can all listen. What
leaves the process (the JSONL file, the progress lines) has its secrets masked.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, TextIO

from ..redaction import Redactor

Listener = Callable[[dict[str, Any]], None]
#: Masks secrets in a text (a :class:`rlm_sandbox.redaction.Redactor`).
Redact = Callable[[str], str]


class Trace:
    def __init__(self, listeners: list[Listener] | None = None, *, depth: int = 0) -> None:
        self.events: list[dict[str, Any]] = []
        self._listeners = list(listeners or [])
        self._started = time.monotonic()
        self._lock = threading.Lock()
        self.depth = depth

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"event": event, "t": round(time.monotonic() - self._started, 4), "depth": self.depth, **fields}
        with self._lock:
            self.events.append(record)
        for listener in self._listeners:
            try:
                listener(record)
            except Exception:  # noqa: BLE001 - a broken listener must not break the run
                pass
        return record

    def child(self, **fields: Any) -> "Trace":
        """A trace for a child run: its events are nested under one event of ours."""
        child = Trace(self._listeners, depth=self.depth + 1)
        self.emit("child_run", events=child.events, **fields)
        return child


def _serialise(record: dict[str, Any]) -> str:
    """One JSON line; values JSON cannot hold are written as their str()."""
    return json.dumps(record, ensure_ascii=False, default=str)


def write_jsonl(path: str | Path, events: list[dict[str, Any]], *, redact: Redact | None = None) -> None:
    """One event per line, secrets masked (see :mod:`rlm_sandbox.redaction`)."""
    redact = redact or Redactor.from_environment()
    with open(path, "w", encoding="utf-8") as handle:
        for record in events:
            handle.write(redact(_serialise(record)) + "\n")


class JsonlWriter:
    """A listener that appends each event to a JSONL file as it happens, flushed per event.

    So a run that is interrupted (Ctrl-C, a crash, a kill) leaves a valid trace of what
    happened so far. The file is opened here, before the run, so a bad path fails first.
    Events of child runs arrive through the same listener, so a ``child_run`` event is
    written without its (still empty) ``events`` list. A failed write stops the writing
    and is kept in ``error``; it never breaks the run.
    """

    def __init__(self, path: str | Path, *, redact: Redact | None = None) -> None:
        self.path = Path(path)
        self._file: TextIO | None = open(self.path, "w", encoding="utf-8")
        self._redact = redact or Redactor.from_environment()
        self._lock = threading.Lock()
        self.error: OSError | None = None
        self.written = 0

    def __call__(self, record: dict[str, Any]) -> None:
        if record.get("event") == "child_run":
            record = {key: value for key, value in record.items() if key != "events"}
        line = self._redact(_serialise(record)) + "\n"
        with self._lock:
            if self._file is None or self.error is not None:
                return
            try:
                self._file.write(line)
                self._file.flush()
                self.written += 1
            except OSError as exc:
                self.error = exc

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                try:
                    self._file.close()
                except OSError as exc:
                    self.error = self.error or exc
                self._file = None


def _short(text: str, limit: int = 300) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 20] + f" ... [{len(text):,} chars]"


def _one_line(text: str, limit: int) -> str:
    """Clipped to one line: newlines are shown as \\n, so a line never spills into the next."""
    return _short(text, limit).replace("\r", "").replace("\n", "\\n")


class VerbosePrinter:
    """Progress on stderr for ``verbose=True``. It only reads events: what the model sees
    is decided elsewhere and never depends on it.

    Each event is one line, or one header line and an indented block (a model reply, a
    cell's output), written whole by one ``write`` under a lock that every printer shares,
    so events from concurrent sub-calls, threads or runs never interleave. Secrets are
    masked.
    """

    _lock = threading.Lock()  # one for every printer: they share stderr

    def __init__(self, stream: TextIO | None = None, *, redact: Redact | None = None) -> None:
        self._stream = stream
        self._redact = redact or Redactor.from_environment()

    def __call__(self, record: dict[str, Any]) -> None:
        text = self._redact(self.format(record))
        stream = self._stream or sys.stderr
        with self._lock:
            stream.write(text)
            stream.flush()

    @staticmethod
    def format(record: dict[str, Any]) -> str:
        """The text for one event: whole lines, each ending in a newline."""
        indent = "  " * record.get("depth", 0)
        kind = record["event"]
        block = ""
        if kind == "iteration":
            line = f"-- iteration {record['iteration']} ({record.get('model', '')})"
        elif kind == "model_reply":
            line, block = "model:", _short(record.get("text", ""))
        elif kind == "cell":
            status = "error: " + _one_line(record["error"], 200) if record.get("error") else "ok"
            line = f"cell {record.get('iteration', 0)}.{record.get('index', 0) + 1} [{status}] " \
                   f"{record.get('duration_s', 0):.2f}s, output:"
            block = _short(record.get("output", "") or "", 200) or "(none)"
        elif kind == "sub_call":
            line = f"sub-call {record.get('model', '')}: {_one_line(record.get('prompt', ''), 80)} -> " \
                   f"{_one_line(record.get('response', '') or record.get('error', '') or '', 80)}"
        elif kind == "final":
            line, block = f"FINAL ({record.get('status')}):", _short(record.get("answer", "") or "", 200)
        else:
            line = f"{kind}: " + _one_line(", ".join(f"{k}={v}" for k, v in record.items()
                                                     if k not in ("event", "t", "depth", "events")), 200)
        lines = block.splitlines()
        if len(lines) == 1 and len(line) + len(lines[0]) <= 120:  # short enough to stay on one line
            line, lines = f"{line} {lines[0]}", []
        text = f"{indent}[rlm {record.get('t', 0):7.2f}s] {line}\n"
        return text + "".join(f"{indent}    | {block_line}\n" for block_line in lines)
