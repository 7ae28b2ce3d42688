"""Reading a model's reply: which code blocks to run, and whether it gave a final answer.

Fences that run: ```repl, ```python and ```py (any case). Other fences (```text,
```json, bare ```) are shown to nobody and run nowhere: they are the model's prose.

A final answer in the text counts only when ``FINAL(`` or ``FINAL_VAR(`` starts a line
outside code blocks, so "I will call FINAL(x) once I know x" in a sentence is not taken
as the answer. The argument may span lines and hold nested parentheses.

A runnable fence opened and never closed (a reply cut off at the token limit, or a model
that forgot the closing fence) is ``unclosed_block``: it is neither run nor read as prose.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

RUNNABLE_FENCES = ("repl", "python", "py")

_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)^[ \t]*```[ \t]*$",
                    re.DOTALL | re.MULTILINE)
_FINAL_START = re.compile(r"^[ \t>*_]*(FINAL_VAR|FINAL)\(", re.MULTILINE)
_OPEN_FENCE = re.compile(r"^[ \t]*```[ \t]*([A-Za-z0-9_+-]*)[^\n]*(?:\n|$)", re.MULTILINE)


@dataclass(frozen=True)
class FinalInText:
    """A FINAL(...) or FINAL_VAR(...) written in the reply's text."""

    kind: str  # "FINAL" or "FINAL_VAR"; the engine also uses "VALUE" for an answer a cell computed
    value: str  # the answer text, or the variable name
    #: False when its parentheses never closed (the reply may have been cut off inside it)
    closed: bool = field(default=True, compare=False)


@dataclass(frozen=True)
class ParsedReply:
    code_blocks: list[str]
    final: FinalInText | None
    unclosed_block: str | None = None  # the code of a runnable fence that was never closed


def parse_reply(text: str) -> ParsedReply:
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
    return ParsedReply(code_blocks=blocks, final=find_final("".join(prose_parts)), unclosed_block=unclosed)


def find_final(prose: str) -> FinalInText | None:
    """The last FINAL(...)/FINAL_VAR(...) that starts a line of ``prose``."""
    matches = list(_FINAL_START.finditer(prose))
    if not matches:
        return None
    match = matches[-1]
    argument, closed = _balanced_argument(prose, match.end())
    if match.group(1) == "FINAL_VAR":
        return FinalInText("FINAL_VAR", _unquote(argument).strip(), closed)
    return FinalInText("FINAL", _unquote(argument), closed)


def _balanced_argument(text: str, start: int) -> tuple[str, bool]:
    """Text from ``start`` up to the parenthesis that closes the one before it, and whether
    one did.

    Quotes are not tracked (answers are prose, with apostrophes). When the parentheses
    never balance, the argument runs to the last ``)`` after it, or to the end.
    """
    depth = 1
    for index in range(start, len(text)):
        char = text[index]
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth == 0:
                return text[start:index].strip(), True
    end = text.rfind(")", start)
    return text[start:end if end >= 0 else len(text)].strip(), False


def _unquote(argument: str) -> str:
    """``"42"`` or ``'x'`` (a Python string literal) means its content; prose stays prose."""
    if len(argument) >= 2 and argument[0] in "'\"" and argument[-1] == argument[0] or \
            argument[:3] in ('"""', "'''"):
        try:
            value = ast.literal_eval(argument)
        except (ValueError, SyntaxError):
            return argument
        if isinstance(value, str):
            return value
    return argument


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
