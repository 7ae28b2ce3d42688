"""The trajectory of a run: a list of events, streamed to listeners as they happen.

Events are plain dicts (``{"event": "cell", "t": 1.23, ...}``) so they serialise to
JSONL as they are, and a progress display, a log file or a test can all listen.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable, TextIO

Listener = Callable[[dict[str, Any]], None]


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


def write_jsonl(path: str | Path, events: list[dict[str, Any]]) -> None:
    """One event per line; values JSON cannot hold are written as their str()."""
    with open(path, "w", encoding="utf-8") as handle:
        for record in events:
            handle.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")


def _short(text: str, limit: int = 300) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 20] + f" ... [{len(text):,} chars]"


class VerbosePrinter:
    """Progress on stderr for ``verbose=True``. It only reads events: what the model sees
    is decided elsewhere and never depends on it."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr

    def __call__(self, record: dict[str, Any]) -> None:
        indent = "  " * record.get("depth", 0)
        kind = record["event"]
        if kind == "iteration":
            line = f"-- iteration {record['iteration']} ({record.get('model', '')})"
        elif kind == "model_reply":
            line = f"model: {_short(record.get('text', ''))}"
        elif kind == "cell":
            status = "error: " + record["error"] if record.get("error") else "ok"
            line = f"cell {record.get('iteration', 0)}.{record.get('index', 0) + 1} [{status}] " \
                   f"{record.get('duration_s', 0):.2f}s\n" \
                   f"{indent}  output: {_short(record.get('output', ''), 200)}"
        elif kind == "sub_call":
            line = f"sub-call {record.get('model', '')}: {_short(record.get('prompt', ''), 80)} -> " \
                   f"{_short(record.get('response', '') or record.get('error', ''), 80)}"
        elif kind == "final":
            line = f"FINAL ({record.get('status')}): {_short(record.get('answer', ''), 200)}"
        else:
            line = f"{kind}: " + _short(", ".join(f"{k}={v}" for k, v in record.items()
                                                  if k not in ("event", "t", "depth", "events")), 200)
        print(f"{indent}[rlm {record['t']:7.2f}s] {line}", file=self._stream, flush=True)
