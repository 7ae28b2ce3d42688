"""Reading a model's reply: which code blocks to run, and whether it gave a final answer.

The fences (which run, which are prose, an unclosed one) are read by :mod:`rlm_sandbox.fences`,
which the viewers share. Here: the final answer.

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

from ..fences import read_fences

_FINAL_START = re.compile(r"^[ \t>*_]*(FINAL_VAR|FINAL)\(", re.MULTILINE)


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
    """The blocks to run, the final answer written in the prose, and an unclosed runnable block."""
    fenced = read_fences(text)
    return ParsedReply(code_blocks=fenced.code_blocks, final=find_final(fenced.prose),
                       unclosed_block=fenced.unclosed_block)


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
