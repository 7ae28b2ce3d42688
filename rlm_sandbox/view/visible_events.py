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
    """``value`` made visible; the very same object when nothing in it needed it (most
    events), so a big trace is not copied for nothing."""
    if isinstance(value, str):
        cleaned = visible(value)
        return value if cleaned == value else cleaned
    if isinstance(value, BaseModel):
        return visible_event(value)
    if isinstance(value, (list, tuple)):
        items = [_clean(item) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else type(value)(items)
    if isinstance(value, dict):
        pairs = [(_clean(key), _clean(item)) for key, item in value.items()]
        same = all(k is key and v is item for (k, v), (key, item) in zip(pairs, value.items(), strict=True))
        return value if same else dict(pairs)
    return value


def visible_event(event: BaseModel) -> Any:
    """``event``, or a copy of it whose strings (nested ones too) show control and bidi
    characters as ``\\x1b``-style escapes; newlines and tabs stay."""
    update = {}
    for name in type(event).model_fields:
        value = getattr(event, name)
        cleaned = _clean(value)
        if cleaned is not value:
            update[name] = cleaned
    return event.model_copy(update=update) if update else event


def visible_events(events: list[Any]) -> list[Any]:
    """Each event as :func:`visible_event` makes it."""
    return [visible_event(event) for event in events]
