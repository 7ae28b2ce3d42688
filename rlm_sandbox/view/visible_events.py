"""Events with every string in them made visible, for a viewer that draws on a terminal.

A trace holds what a model wrote (replies, code, cell output, sub-call prompts and answers)
and what a document it quoted holds: any of it may carry ESC, OSC or bidi sequences. A
terminal view must show those, not obey them, whatever field a future version adds; so the
viewer cleans the whole event, not the few fields it happens to draw today.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from ..untrusted import visible

__all__ = ["visible_event", "visible_events"]


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return visible(value)
    if isinstance(value, BaseModel):
        return visible_event(value)
    if isinstance(value, (list, tuple)):
        return type(value)(_clean(item) for item in value)
    if isinstance(value, dict):
        return {_clean(key): _clean(item) for key, item in value.items()}
    return value


def visible_event(event: BaseModel) -> Any:
    """A copy of ``event`` whose strings (nested ones too) show control and bidi characters
    as ``\\x1b``-style escapes; newlines and tabs stay."""
    return event.model_copy(update={name: _clean(getattr(event, name)) for name in type(event).model_fields})


def visible_events(events: list[Any]) -> list[Any]:
    """Each event as :func:`visible_event` makes it."""
    return [visible_event(event) for event in events]
