"""Values as the reports show them: plain, visible, clipped, then escaped by each format.

Answers, expected values and error reasons are text a model (or a document it quoted)
wrote: untrusted. Every report passes them through :func:`shown` first, which turns the
value into plain text (a string as it is, a list as its items, not a Python repr), makes
control and XML-forbidden characters visible (:func:`rlm_sandbox.untrusted.visible`), and
clips it; only then does the format escape it (HTML, XML, a Markdown cell), so a cut never
falls inside an entity.
"""

from __future__ import annotations

import json
from typing import Any

from ...untrusted import visible

__all__ = ["clip", "plain", "shown"]


def plain(value: Any) -> str:
    """A value as a reader expects to see it: text as it is, a list of scalars as its items
    joined by ", ", anything else as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(item, (str, int, float)) for item in value):
        return ", ".join(str(item) for item in value)
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        return str(value)


def clip(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters, an ellipsis marking the cut."""
    return text if len(text) <= limit else text[:max(0, limit - 1)] + "…"


def shown(value: Any, limit: int | None = None, *, keep: str = "\n\t") -> str:
    """``value`` as plain, visible text, clipped to ``limit``: ready for a format's escaping."""
    text = visible(plain(value), keep=keep)
    return text if limit is None else clip(text, limit)
