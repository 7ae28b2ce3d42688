"""A run's events as short progress lines, streamed to the client as ``reasoning_content``.

One line per iteration, per cell and per sub-call batch (a batch of ``llm_query_batched``
is one line when its last prompt is answered), plus retries and budget stops, so a client
sees the run move without the whole trajectory (``GET /v1/rlm/traces/{id}`` has that).
Model-written text in a line (a cell's output, an error) is passed through
:func:`~rlm_sandbox.untrusted.visible` and cut to one short line: it is untrusted.
"""

from __future__ import annotations

from typing import Any

from ..untrusted import visible

_CLIP = 120


def _clip(text: str) -> str:
    text = visible(" ".join(text.split()), keep="")
    return text if len(text) <= _CLIP else text[: _CLIP - 3] + "..."


class ProgressLines:
    """Turns events into lines; keeps the count of each sub-call batch until it is whole."""

    def __init__(self) -> None:
        self._batches: dict[tuple[Any, ...], int] = {}

    def line(self, event: Any) -> str | None:
        """The line for ``event`` (ending in a newline), or None for events not shown."""
        kind = event.event
        indent = "  " * event.depth
        text: str | None = None
        if kind == "iteration":
            text = ("answer-now call: the run ended without FINAL" if event.purpose == "answer_now"
                    else f"iteration {event.iteration} ({event.model})")
        elif kind == "cell":
            outcome = f"error {_clip(event.error_type or '')}: {_clip(event.error or '')}" if event.error else \
                f"ok, {event.stdout_chars} chars of output"
            text = f"cell {event.iteration}.{event.index + 1}: {outcome} ({event.duration_s:.2f}s)"
        elif kind == "sub_call":
            text = self._sub_call(event)
        elif kind == "child_run_start":
            text = f"child run {event.child_run_id}: {_clip(event.query)}"
        elif kind == "model_retry":
            text = f"model {event.model}: attempt {event.attempt} failed ({_clip(event.cause)}), retrying"
        elif kind == "budget_exhausted":
            text = f"budget: {event.limit} reached ({event.used} of {event.allowed})"
        elif kind == "sandbox_restart":
            text = f"sandbox restarted: {_clip(event.reason)}"
        return None if text is None else f"{indent}{text}\n"

    def _sub_call(self, event: Any) -> str | None:
        if event.batch_size is None:
            return f"sub-call {event.model}: {event.outcome}, {event.response_chars} chars"
        key = (event.run_id, event.iteration, event.cell, event.batch_size, event.function)
        seen = self._batches.get(key, 0) + 1
        if seen < event.batch_size:
            self._batches[key] = seen
            return None
        self._batches.pop(key, None)
        return f"sub-call batch of {event.batch_size} ({event.model}) answered"
