"""Fenced code blocks in a model's reply: which ones run, and the reply cut into prose and code.

A leaf module (standard library only) because two rooms need the same reading: the loop
(``core/parsing``) decides which blocks to run, and the viewers (``view/``) highlight them
and count a turn's cells from the event stream. The viewers promise to read only events,
so they may not import ``core``; both import this instead (import-linter checks it).

Fences that run: ```repl, ```python and ```py (any case). Other fences (```text,
```json, bare ```) run nowhere: they are the model's prose. A runnable fence opened and
never closed (a reply cut off at the token limit) is neither run nor read as prose.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["RUNNABLE_FENCES", "Fenced", "read_fences", "split_fences"]

RUNNABLE_FENCES = ("repl", "python", "py")

_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$",
                    re.DOTALL | re.MULTILINE)
_OPEN_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[^\n]*(?:\n|$)", re.MULTILINE)


@dataclass(frozen=True)
class Fenced:
    """A reply read for its fences."""

    code_blocks: list[str]  # the closed, non-empty runnable blocks, in order
    prose: str  # the text outside every fence (and before an unclosed one)
    unclosed_block: str | None = None  # the code of a runnable fence that was never closed


def read_fences(text: str) -> Fenced:
    """The runnable blocks of ``text``, its prose, and an unclosed runnable block if any."""
    blocks: list[str] = []
    prose_parts: list[str] = []
    position = 0
    for match in _FENCE.finditer(text):
        prose_parts.append(text[position:match.start()])
        position = match.end()
        if match.group(1).lower() in RUNNABLE_FENCES and match.group(2).strip():
            blocks.append(match.group(2))
    rest, unclosed = text[position:], None
    opened = _OPEN_FENCE.search(rest)
    if opened is not None:  # every fence after the last pair is unclosed; only a runnable one matters
        if opened.group(1).lower() in RUNNABLE_FENCES:
            unclosed = rest[opened.end():]
        rest = rest[:opened.start()]
    prose_parts.append(rest)
    return Fenced(code_blocks=blocks, prose="".join(prose_parts), unclosed_block=unclosed)


def split_fences(text: str) -> list[tuple[str | None, str]]:
    """``text`` as pieces in order: ``(None, prose)`` and ``(language, code)`` for each fenced
    block (language "" for a bare fence). The viewers use it to highlight a reply's code."""
    pieces: list[tuple[str | None, str]] = []
    position = 0
    for match in _FENCE.finditer(text):
        if text[position:match.start()].strip():
            pieces.append((None, text[position:match.start()]))
        pieces.append((match.group(1).lower(), match.group(2)))
        position = match.end()
    if text[position:].strip():
        pieces.append((None, text[position:]))
    return pieces
