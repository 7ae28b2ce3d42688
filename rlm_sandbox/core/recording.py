"""Small pieces the loop and the broker use to fill events: a context's shape, secret
masking of every value, retries as event records (and as they happen), image-build
progress as events, and clipping of tool arguments."""

from __future__ import annotations

import json
from typing import Any, Callable

from ..events.stream import RunRecorder
from ..events.types import ImageBuild, ModelRetry, Retry
from ..models.base import OnRetry, RetryCause
from ..redaction import Redactor
from ..sandbox.base import BuildProgress

#: Longest JSON text of one tool argument kept in an event (the rest is summarised).
MAX_ARGUMENT_CHARS = 2000


def context_shape(context: Any) -> dict[str, Any]:
    """``context_type`` and ``context_length`` of a run's context, for its run_start event."""
    if context is None:
        return {"context_type": "none", "context_length": None}
    kind = type(context).__name__
    kind = {"bytearray": "bytes", "memoryview": "bytes"}.get(kind, kind)
    try:
        length = len(context)
    except TypeError:
        length = None
    return {"context_type": kind, "context_length": length}


def masker(redactor: Redactor) -> Callable[[Any], Any]:
    """Masks every secret in a value: strings, and the strings inside lists, tuples and dicts."""
    if not redactor:
        return lambda value: value

    def mask(value: Any) -> Any:
        if isinstance(value, str):
            return redactor(value)
        if isinstance(value, dict):
            return {key: mask(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [mask(item) for item in value]
        return value

    return mask


def retries_of(causes: tuple[RetryCause, ...]) -> list[Retry]:
    return [Retry(cause=cause.cause, wait_s=cause.wait_s) for cause in causes]


def retry_reporter(events: RunRecorder, call_id: str, role: str, model: str) -> OnRetry:
    """A model call's ``on_retry``: each retried attempt becomes a ``model_retry`` event at once."""

    def report(cause: RetryCause, attempt: int, max_attempts: int) -> None:
        events.emit(ModelRetry, call_id=call_id, role=role, model=model, attempt=attempt,
                    max_attempts=max_attempts, cause=cause.cause, wait_s=cause.wait_s)

    return report


def build_reporter(events: RunRecorder) -> Callable[[BuildProgress], None]:
    """A sandbox's ``on_progress``: the image build's progress becomes ``image_build`` events."""

    def report(progress: BuildProgress) -> None:
        events.emit(ImageBuild, image=progress.image, message=progress.message, step=progress.step,
                    steps=progress.steps, done=progress.done)

    return report
def failure_fields(exc: BaseException | None) -> dict[str, Any]:
    """What a failed model call's ``model_reply`` says it cost and tried (an LLMError knows)."""
    return {"input_tokens": getattr(exc, "input_tokens", 0), "output_tokens": getattr(exc, "output_tokens", 0),
            "cached_input_tokens": getattr(exc, "cached_input_tokens", 0),
            "cache_write_tokens": getattr(exc, "cache_write_tokens", 0),
            "cost_usd": getattr(exc, "cost_usd", None), "attempts": getattr(exc, "attempts", 1),
            "retries": retries_of(getattr(exc, "retry_causes", ()))}


def clip_json(value: Any, limit: int = MAX_ARGUMENT_CHARS) -> Any:
    """``value`` if its JSON is short, else a string saying what it was (events stay small)."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return f"<{type(value).__name__}>"
    if len(text) <= limit:
        return json.loads(text)
    return f"{text[:limit]}... [{len(text):,} characters of JSON]"
