"""The host functions a sandbox may call back, for one run at one depth.

Every sub-call passes through here — ``llm_query``, ``rlm_query``, host tools — so this
is where the shared ledger counts and refuses, where concurrency is bounded (per run and
per process), where depth is decided, and where the trajectory records what was asked.
Callbacks arrive on the sandbox connection's threads; model calls are handed to the
run's event loop, so they use litellm's async API.
"""

from __future__ import annotations

import asyncio
import builtins
import inspect
import json
import keyword
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Coroutine, Sequence

from ..errors import BudgetExceeded, LLMError
from ..events.trace import Trace
from .metering import Meter

#: Exception names a cell can catch by name (``except BudgetExceeded:``).
CELL_EXCEPTIONS = ("BudgetExceeded", "LLMError", "ToolError")
#: The broker's own functions, as the sandbox sees them.
HELPERS = ("llm_query", "llm_query_batched", "rlm_query", "rlm_query_batched", "budget_status")
#: Names the sandbox already uses; host tools may not take them.
RESERVED_NAMES = frozenset({"context", *HELPERS, "memory_status", "forget", "FINAL", "FINAL_VAR",
                            "HostCallError", *CELL_EXCEPTIONS})
#: Runs a child RLM (query, context, trace) -> its RLMResult; supplied by the engine.
ChildRunner = Callable[[str, Any, Trace], Any]

_process_slots: threading.BoundedSemaphore | None = None
_process_slots_lock = threading.Lock()


def process_slots() -> threading.BoundedSemaphore:
    """Sub-calls in flight across every run in this process (RLM_SANDBOX_MAX_PROCESS_CONCURRENCY, 64)."""
    global _process_slots
    with _process_slots_lock:
        if _process_slots is None:
            _process_slots = threading.BoundedSemaphore(int(os.environ.get("RLM_SANDBOX_MAX_PROCESS_CONCURRENCY", 64)))
        return _process_slots


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


def callback_docs(tools: dict[str, Callable[..., Any]]) -> dict[str, str]:
    """Every callback name a run's sandbox gets, with the docstring it shows there."""
    docs = {name: inspect.getdoc(getattr(Broker, name)) or "" for name in HELPERS}
    docs.update({name: inspect.getdoc(tool) or "" for name, tool in tools.items()})
    return docs


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


class Broker:
    def __init__(self, *, meter: Meter, trace: Trace, sub_model: str,
                 loop: asyncio.AbstractEventLoop, depth: int = 0,
                 tools: dict[str, Callable[..., Any]] | None = None,
                 child_runner: ChildRunner | None = None) -> None:
        self._meter = meter
        self._llm = meter.llm
        self._ledger = ledger = meter.ledger
        self._trace = trace
        self._sub_model = sub_model
        self._loop = loop
        self.depth = depth
        self._child_runner = child_runner
        self._run_slots = threading.BoundedSemaphore(ledger.budget.max_concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._callbacks: dict[str, Callable[..., Any]] = {name: getattr(self, name) for name in HELPERS}
        self._callbacks.update({name: self._tool_caller(name, tool) for name, tool in (tools or {}).items()})

    def callbacks(self) -> dict[str, Callable[..., Any]]:
        """The functions the sandbox may call back, by name (built once per run)."""
        return self._callbacks

    # -- the functions the sandbox sees -----------------------------------------------

    def llm_query(self, prompt: str, model: str | None = None) -> str:
        """llm_query(prompt, model=None) -> str: ask a sub-model; it sees only the prompt."""
        self._check_prompt(prompt, "llm_query")
        self._ledger.reserve_sub_call("llm_query")
        return self._complete(prompt, model)

    def llm_query_batched(self, prompts: list[str], model: str | None = None,
                          return_exceptions: bool = False) -> list[Any]:
        """llm_query_batched(prompts, model=None, return_exceptions=False) -> list[str]: many prompts
        concurrently, answers in order. If a prompt fails, it raises and the other answers are lost;
        with return_exceptions=True you get them all, a failed prompt's place holding
        {"error": "LLMError", "message": "..."} (or "BudgetExceeded") instead of a str."""
        if not isinstance(prompts, list):
            raise TypeError("llm_query_batched(prompts) takes a list of strings")
        for prompt in prompts:
            self._check_prompt(prompt, "llm_query_batched")
        self._ledger.reserve_sub_call("llm_query_batched", count=len(prompts))  # all or none
        return self._fan_out([(self._complete, (prompt, model)) for prompt in prompts], "sub-calls", model,
                             return_exceptions)

    def rlm_query(self, query: str, context: Any = None) -> str:
        """rlm_query(query, context=None) -> str: a child RLM with its own sandbox holding
        `context` answers `query`; at the depth limit it is a plain llm_query."""
        if not isinstance(query, str) or not query.strip():
            raise TypeError("rlm_query(query, context=None) takes the query as a non-empty str")
        if self.depth + 1 > self._ledger.budget.max_depth or self._child_runner is None:
            prompt = query if context is None else f"{query}\n\nContext:\n{_as_text(context)}"
            self._trace.emit("depth_fallback", depth=self.depth, max_depth=self._ledger.budget.max_depth)
            return self.llm_query(prompt)
        self._ledger.reserve_sub_call("rlm_query")
        return self._child(query, context)

    def rlm_query_batched(self, queries: Sequence[Any], return_exceptions: bool = False) -> list[Any]:
        """rlm_query_batched(queries, return_exceptions=False) -> list[str]: several rlm_query at
        once; each item is a query str or a (query, context) pair. return_exceptions as in
        llm_query_batched."""
        if not isinstance(queries, list):
            raise TypeError("rlm_query_batched(queries) takes a list of queries or (query, context) pairs")
        pairs = [(item, None) if isinstance(item, str) else tuple(item) for item in queries]
        if any(len(pair) != 2 for pair in pairs):
            raise TypeError("each rlm_query_batched item is a query str or a [query, context] pair")
        return self._fan_out([(self.rlm_query, pair) for pair in pairs], "child runs", None, return_exceptions)

    def budget_status(self) -> dict[str, Any]:
        """budget_status() -> dict: the run's limits and what is used so far (read-only)."""
        return {**self._ledger.status(), "depth": {"used": self.depth, "limit": self._ledger.budget.max_depth}}

    # -- internals -------------------------------------------------------------------

    def _tool_caller(self, name: str, tool: Callable[..., Any]) -> Callable[..., Any]:
        def call_tool(*args: Any, **kwargs: Any) -> Any:
            self._ledger.reserve_sub_call(f"tool call ({name})")
            started = time.monotonic()
            try:
                value = tool(*args, **kwargs)
            except TypeError as exc:
                self._trace.emit("tool_call", tool=name, error=str(exc))
                raise ToolError(f"{name}(): {exc}") from None
            except Exception as exc:
                self._trace.emit("tool_call", tool=name, error=f"{type(exc).__name__}: {exc}")
                raise
            try:
                json.dumps(value)
            except (TypeError, ValueError):
                raise ToolError(f"tool {name} returned a {type(value).__name__}, which is not JSON-serialisable; "
                                "host tools must return str, numbers, bools, None, lists or dicts") from None
            self._trace.emit("tool_call", tool=name, args=args, kwargs=kwargs,
                             duration_s=round(time.monotonic() - started, 4))
            return value

        call_tool.__doc__ = inspect.getdoc(tool)
        return call_tool

    def _check_prompt(self, prompt: Any, name: str) -> None:
        if not isinstance(prompt, str):
            raise TypeError(f"{name}() takes prompts as str, not {type(prompt).__name__}")
        limit = self._ledger.budget.max_sub_prompt_chars
        if limit is not None and len(prompt) > limit:
            raise BudgetExceeded(
                "max_sub_prompt_chars", limit, len(prompt),
                f"prompt of {len(prompt):,} characters is over max_sub_prompt_chars={limit:,}; send a smaller chunk")

    def _on_loop(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run a coroutine on the run's event loop from a callback thread, and wait."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def _complete(self, prompt: str, model: str | None) -> str:
        model = model or self._sub_model
        messages = [{"role": "user", "content": prompt}]
        max_tokens = self._meter.settings.sub_max_tokens
        started = time.monotonic()
        # Reserved before a slot is taken: a call waiting for budget holds no slot.
        reservation = self._meter.reserve("llm_query", model, messages, max_tokens)
        try:
            with self._run_slots, process_slots():
                completion = self._on_loop(self._llm.acomplete(model, messages, max_tokens=max_tokens,
                                                               price=self._meter.custom_price(model)))
        except BaseException as exc:
            self._meter.settle_failure(reservation, "sub", exc)
            if isinstance(exc, LLMError):
                self._trace.emit("sub_call", model=model, prompt=prompt, error=str(exc),
                                 duration_s=round(time.monotonic() - started, 4))
            raise
        self._meter.settle(reservation, "sub", completion)
        self._trace.emit("sub_call", model=model, prompt=prompt, response=completion.text,
                         input_tokens=completion.input_tokens, output_tokens=completion.output_tokens,
                         duration_s=round(time.monotonic() - started, 4))
        return completion.text

    def _child(self, query: str, context: Any) -> str:
        assert self._child_runner is not None
        with self._run_slots:
            result = self._child_runner(query, context, self._trace.child(query=query))
        if result.status in ("budget_exhausted", "timeout") and self._ledger.exhausted is not None:
            raise self._ledger.exhausted
        if result.status == "error":
            raise LLMError(f"rlm_query child run failed: {result.error}", model=self._sub_model, transient=False)
        return result.answer

    def _fan_out(self, jobs: list[tuple[Callable[..., str], tuple[Any, ...]]], what: str,
                 model: str | None, return_exceptions: bool = False) -> list[Any]:
        futures = [self._executor().submit(_capture, function, args) for function, args in jobs]
        results = [future.result() for future in futures]
        if return_exceptions:  # every paid answer reaches the cell; failures are marked in place
            return [{"error": _cell_name(r), "message": str(r)} if isinstance(r, Exception) else r for r in results]
        failures = [(i, r) for i, r in enumerate(results) if isinstance(r, Exception)]
        if failures:
            index, first = failures[0]
            if isinstance(first, TypeError):
                raise first
            kept = (f" The {len(jobs) - len(failures)} that succeeded are lost: pass return_exceptions=True to "
                    "get every answer, with each failure marked in its place." if len(failures) < len(jobs) else "")
            message = f"{len(failures)} of {len(jobs)} {what} failed; the first (item {index}): {first}.{kept}"
            if isinstance(first, BudgetExceeded):
                raise BudgetExceeded(first.limit, first.allowed, first.used, message)
            raise LLMError(message, model=model or self._sub_model, transient=getattr(first, "transient", False))
        return results

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._ledger.budget.max_concurrency, thread_name_prefix="rlm-fan-out")
            return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)


def _capture(function: Callable[..., str], args: tuple[Any, ...]) -> str | Exception:
    try:
        return function(*args)
    except Exception as exc:  # noqa: BLE001 - collected, then reported for the whole batch
        return exc


def _cell_name(exc: BaseException) -> str:
    """The exception's name as a cell can catch it (LLMAuthenticationError is an LLMError there)."""
    for cls in type(exc).__mro__:
        if cls.__name__ in CELL_EXCEPTIONS:
            return cls.__name__
    return type(exc).__name__


def _as_text(context: Any) -> str:
    if isinstance(context, str):
        return context
    if isinstance(context, (bytes, bytearray)):
        return bytes(context).decode("utf-8", "replace")
    return json.dumps(context, ensure_ascii=False, default=str)


class BrokerSwitch:
    """Callbacks that forward to whichever run currently uses a shared sandbox (sessions)."""

    def __init__(self) -> None:
        self.current: Broker | None = None

    def callbacks(self, names: dict[str, str]) -> dict[str, Callable[..., Any]]:
        def forwarder(name: str, doc: str) -> Callable[..., Any]:
            def forward(*args: Any, **kwargs: Any) -> Any:
                if self.current is None:
                    raise RuntimeError(f"{name}() is only available while a question is being answered")
                return self.current.callbacks()[name](*args, **kwargs)

            forward.__doc__ = doc
            return forward

        return {name: forwarder(name, doc) for name, doc in names.items()}
