"""Events as JSON lines: a writer that flushes per event, and a reader for whole or cut files.

The writer is an ordinary listener. Because it flushes every event, a run that is
interrupted (Ctrl-C, SIGTERM, a crash) leaves a file whose complete lines are all valid;
the reader skips a cut last line, says so, and marks the trace partial.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from .types import EVENT_ADAPTER, SCHEMA_VERSION, EventBase, Final


class TraceFileError(ValueError):
    """A file cannot be read as an rlm-sandbox trace."""


class JsonlWriter:
    """An ``EventLog`` listener appending each event to a JSONL file as it happens, flushed
    per event, so an interrupted run (Ctrl-C, a crash, a kill) leaves a valid trace of what
    happened so far. The file is opened here, before the run, so a bad path fails first. A
    failed write stops the writing and is kept in ``error``; it never breaks the run.
    """

    def __init__(self, path: str | Path, *, append: bool = False) -> None:
        self.path = Path(path)
        self._file: IO[str] | None = open(self.path, "a" if append else "w", encoding="utf-8")  # noqa: SIM115 - close() ends it
        self._lock = threading.Lock()
        self.error: OSError | None = None
        self.written = 0

    def __call__(self, event: EventBase) -> None:
        line = event.to_json() + "\n"
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

    def __enter__(self) -> "JsonlWriter":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def write_jsonl(path: str | Path, events: list[EventBase]) -> None:
    """Write a whole list of events (e.g. ``result.trajectory``) to a file."""
    with JsonlWriter(path) as writer:
        for event in events:
            writer(event)


@dataclass
class TraceFile:
    """The events of a trace file, and what was wrong with it, if anything."""

    events: list[Any]
    problems: list[str] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        """True when the root run has no final event (interrupted) or a line was unreadable."""
        roots_done = any(isinstance(e, Final) and e.parent_run_id is None for e in self.events)
        return bool(self.problems) or not roots_done


def read_events(path: str | Path) -> TraceFile:
    """Load a trace; a cut last line (an interrupted write) is skipped and reported."""
    try:
        lines = Path(path).read_text(encoding="utf-8", errors="replace").split("\n")
    except OSError as exc:
        raise TraceFileError(f"cannot read trace {path}: {exc.strerror or exc}") from None
    trace = TraceFile(events=[])
    last = len(lines) - 1
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
            if isinstance(raw, dict) and isinstance(raw.get("schema"), int) and raw["schema"] > SCHEMA_VERSION:
                raise TraceFileError(f"{path} line {number}: event schema {raw['schema']} is newer than this "
                                     f"rlm-sandbox reads ({SCHEMA_VERSION}); upgrade rlm-sandbox")
            trace.events.append(EVENT_ADAPTER.validate_python(raw))
        except TraceFileError:
            raise
        except (ValueError, ValidationError) as exc:
            where = "the last line was cut short" if number - 1 == last else f"line {number} is not an event"
            if not trace.events and number - 1 != last:
                raise TraceFileError(f"{path} is not an rlm-sandbox trace ({where}: {str(exc)[:200]})") from None
            trace.problems.append(f"{where} (skipped)")
    return trace
