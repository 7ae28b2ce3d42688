"""Host tools: functions of the user's that code in the sandbox may call by name.

They run on the host, in the thread serving the callback; their arguments and results
cross the sandbox boundary as JSON. The names the sandbox already uses are reserved, and
so are Python's built-ins, which the model's code relies on.
"""

from __future__ import annotations

import builtins
import inspect
import json
import keyword
import time
from typing import Any, Callable

from ..errors import BudgetExceeded
from ..events import types as ev
from ..events.stream import RunRecorder
from .budget import Ledger
from .recording import clip_json

#: Exception names a cell can catch by name (``except BudgetExceeded:``).
CELL_EXCEPTIONS = ("BudgetExceeded", "LLMError", "ModelNotAllowed", "ToolError")
#: The broker's own functions, as the sandbox sees them.
HELPERS = ("llm_query", "llm_query_batched", "rlm_query", "rlm_query_batched", "budget_status")
#: Names the sandbox already uses; host tools may not take them.
RESERVED_NAMES = frozenset({"context", *HELPERS, "memory_status", "forget", "FINAL", "FINAL_VAR",
                            "HostCallError", *CELL_EXCEPTIONS})


class ToolError(Exception):
    """A host tool was misused (bad arguments) or failed."""


def describe_tools(tools: dict[str, Callable[..., Any]]) -> dict[str, str]:
    """``{"search(query: str, k: int = 5)": "its docstring"}`` for the system prompt."""
    described = {}
    for name, function in tools.items():
        try:
            signature = str(inspect.signature(function, eval_str=True))
        except (NameError, SyntaxError):  # annotations that do not resolve: show them as written
            signature = str(inspect.signature(function))
        except (TypeError, ValueError):
            signature = "(...)"
        described[f"{name}{signature}"] = inspect.getdoc(function) or "a host tool"
    return described


def check_tools(tools: dict[str, Callable[..., Any]]) -> None:
    """Refuse tools the sandbox could not call by their name, or that would replace one it needs."""
    for name, function in tools.items():
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise ValueError(f"tool name {name!r} must be a Python identifier (and not a keyword)")
        if name in RESERVED_NAMES:
            raise ValueError(f"tool name {name!r} is taken by a built-in helper; rename the tool")
        if hasattr(builtins, name):  # print, len, open...: the model's code relies on them
            raise ValueError(f"tool name {name!r} would replace Python's built-in {name}() in the sandbox; "
                             f"rename the tool (e.g. {name + '_tool'!r})")
        if not callable(function):
            raise TypeError(f"tool {name!r} must be callable, not {type(function).__name__}")


def tool_caller(name: str, tool: Callable[..., Any], ledger: Ledger, events: RunRecorder,
                placement: Callable[[], dict[str, Any]]) -> Callable[..., Any]:
    """``tool`` as a sandbox callback: counted as a sub-call, recorded, its result checked."""

    def call_tool(*args: Any, **kwargs: Any) -> Any:
        where = placement()
        try:
            ledger.reserve_sub_call(f"tool call ({name})")
        except BudgetExceeded as exc:
            events.emit(ev.ToolCall, tool=name, outcome="refused", error=str(exc), **where)
            raise
        started = time.monotonic()

        def record(outcome: str, error: str | None = None) -> None:
            events.emit(ev.ToolCall, tool=name, args=clip_json(list(args)), kwargs=clip_json(kwargs),
                        outcome=outcome, error=error, duration_s=round(time.monotonic() - started, 4), **where)

        try:
            value = tool(*args, **kwargs)
        except TypeError as exc:
            record("error", str(exc))
            raise ToolError(f"{name}(): {exc}") from None
        except Exception as exc:
            record("error", f"{type(exc).__name__}: {exc}")
            raise
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            record("error", f"returned a {type(value).__name__}, not JSON")
            raise ToolError(f"tool {name} returned a {type(value).__name__}, which is not JSON-serialisable; "
                            "host tools must return str, numbers, bools, None, lists or dicts") from None
        record("ok")
        return value

    call_tool.__doc__ = inspect.getdoc(tool)
    return call_tool
