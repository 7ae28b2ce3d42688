"""Each request's trace, kept as ``<trace dir>/<request id>.jsonl`` and served back by id.

The file is written as the run goes (one flushed line per event), so a run cut short by a
disconnect leaves a valid trace ending in ``run_interrupted``. Ids are checked against the
server's own format before any path is built, so a request cannot name another file.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from ..events.jsonl import JsonlWriter, TraceFileError, read_events
from .errors import APIError

_ID = re.compile(r"chatcmpl-[0-9a-f]{24}")


def new_request_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex[:24]}"


class TraceStore:
    """Where traces go (``directory`` None: nowhere; requests still have ids)."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory

    def writer(self, request_id: str) -> JsonlWriter | None:
        return None if self.directory is None else JsonlWriter(self.directory / f"{request_id}.jsonl")

    def path(self, request_id: str) -> Path:
        """The file of a kept trace; a 404 naming why there is none."""
        if self.directory is None:
            raise APIError(404, "this server keeps no traces: start it with --trace-dir DIR", code="no_traces")
        if not _ID.fullmatch(request_id):
            raise APIError(404, f"{request_id[:60]!r} is not a request id (chatcmpl- and 24 hex digits)",
                           param="id", code="trace_not_found")
        path = self.directory / f"{request_id}.jsonl"
        if not path.is_file():
            raise APIError(404, f"no trace for {request_id} in this server's --trace-dir", param="id",
                           code="trace_not_found")
        return path

    def html(self, request_id: str) -> str:
        """The trace as the self-contained HTML viewer's page (a cut trace included)."""
        from ..view.html import render_html

        try:
            trace = read_events(self.path(request_id))
        except TraceFileError as exc:
            raise APIError(500, str(exc), code="trace_unreadable") from None
        return render_html(trace.events, trace.problems)
