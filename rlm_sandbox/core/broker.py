"""The host functions a sandbox may call back, for one run at one depth.

Every sub-call passes through here — ``llm_query``, ``rlm_query``, host tools — so this
is where the shared ledger counts and refuses, where concurrency is bounded (per run and
per process), where depth is decided, and where each call is recorded as events.

Callbacks arrive on the sandbox connection's threads, which are blocked anyway while the
cell waits for the answer. Each one hands ONE coroutine to the run's event loop and waits
for it (``_bridge``, the only place sync meets async here); a batch fans out inside that
coroutine with ``asyncio.gather`` under a semaphore, and child runs are coroutines on the
same loop. So a run holds no thread per prompt or per child, whatever the batch width.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import time
from concurrent.futures import Future
from typing import Any, Awaitable, Callable, Coroutine, Sequence

from ..errors import BudgetExceeded, LLMError, ModelNotAllowed
from ..events import types as ev
from ..events.stream import RunRecorder, new_call_id
from ..models.base import Completion, context_text
from ..models.runtime import on_model_loop
from .concurrency import PROCESS_SLOTS
from .metering import Meter
from .recording import failure_fields, retries_of, retry_reporter
from .tools import CELL_EXCEPTIONS, HELPERS, RESERVED_NAMES, ToolError, check_tools, describe_tools, tool_caller

__all__ = ["CELL_EXCEPTIONS", "HELPERS", "RESERVED_NAMES", "Broker", "BrokerSwitch", "ToolError", "callback_docs",
           "check_tools", "describe_tools"]

#: Runs a child RLM: (query, context, placement) -> awaitable of its RLMResult; from the loop.
ChildRunner = Callable[[str, Any, dict[str, Any]], Awaitable[Any]]


def callback_docs(tools: dict[str, Callable[..., Any]]) -> dict[str, str]:
    """Every callback name a run's sandbox gets, with the docstring it shows there."""
    docs = {name: inspect.getdoc(getattr(Broker, name)) or "" for name in HELPERS}
    docs.update({name: inspect.getdoc(tool) or "" for name, tool in tools.items()})
    return docs


class Broker:
    def __init__(self, *, meter: Meter, events: RunRecorder, sub_model: str,
                 loop: asyncio.AbstractEventLoop, depth: int = 0,
                 tools: dict[str, Callable[..., Any]] | None = None,
                 child_runner: ChildRunner | None = None) -> None:
        self._meter = meter
        self._llm = meter.llm
        self._ledger = ledger = meter.ledger
        self._events = events
        self._sub_model = sub_model
        self._loop = loop
        self.depth = depth
        self._child_runner = child_runner
        self._run_slots: asyncio.Semaphore | None = None  # made on the loop, at first use
        #: Where the running cell is (iteration, cell), set by the loop before each cell.
        self.placement: dict[str, Any] = {}
        self._tasks: set[asyncio.Task[Any]] = set()  # callbacks being served, on the loop
        self._closed = False
        self._callbacks: dict[str, Callable[..., Any]] = {name: getattr(self, name) for name in HELPERS}
        self._callbacks.update({name: tool_caller(name, tool, ledger, events, lambda: dict(self.placement))
                                for name, tool in (tools or {}).items()})

    def callbacks(self) -> dict[str, Callable[..., Any]]:
        """The functions the sandbox may call back, by name (built once per run)."""
        return self._callbacks

    # -- the functions the sandbox sees -----------------------------------------------

    def llm_query(self, prompt: str, model: str | None = None) -> str:
        """llm_query(prompt, model=None) -> str: ask a sub-model; it sees only the prompt."""
        self._check_prompt(prompt, "llm_query")
        self._check_model(model, "llm_query")
        self._reserve_sub_calls("llm_query", model, 1)
        return self._bridge(self._complete(prompt, model, "llm_query", dict(self.placement)))

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
        self._check_model(model, "llm_query_batched")
        self._reserve_sub_calls("llm_query_batched", model, len(prompts))  # all or none
        where = dict(self.placement)
        jobs = [functools.partial(self._complete, prompt, model, "llm_query_batched",
                                  {**where, "batch_index": i, "batch_size": len(prompts)})
                for i, prompt in enumerate(prompts)]
        return self._bridge(self._gather(jobs, "sub-calls", model, return_exceptions))

    def rlm_query(self, query: str, context: Any = None) -> str:
        """rlm_query(query, context=None) -> str: a child RLM with its own sandbox holding
        `context` answers `query`; at the depth limit it is a plain llm_query."""
        self._check_query(query)
        if self._at_depth_limit():
            return self._bridge(self._fallback(query, context, dict(self.placement)))
        self._ledger.reserve_sub_call("rlm_query")
        return self._bridge(self._child(query, context, dict(self.placement)))

    def rlm_query_batched(self, queries: Sequence[Any], return_exceptions: bool = False) -> list[Any]:
        """rlm_query_batched(queries, return_exceptions=False) -> list[str]: several rlm_query at
        once; each item is a query str or a (query, context) pair. return_exceptions as in
        llm_query_batched."""
        if not isinstance(queries, list):
            raise TypeError("rlm_query_batched(queries) takes a list of queries or (query, context) pairs")
        pairs = [(item, None) if isinstance(item, str) else tuple(item) for item in queries]
        if any(len(pair) != 2 for pair in pairs):
            raise TypeError("each rlm_query_batched item is a query str or a [query, context] pair")
        for query, _ in pairs:
            self._check_query(query)
        where = dict(self.placement)
        jobs = [functools.partial(self._one_rlm_query, query, context, {**where, "batch_index": i})
                for i, (query, context) in enumerate(pairs)]
        return self._bridge(self._gather(jobs, "child runs", None, return_exceptions))

    def budget_status(self) -> dict[str, Any]:
        """budget_status() -> dict: the run's limits and what is used so far (read-only)."""
        return {**self._ledger.status(), "depth": {"used": self.depth, "limit": self._ledger.budget.max_depth}}

    # -- checks, on the callback thread ------------------------------------------------

    def _check_prompt(self, prompt: Any, name: str) -> None:
        if not isinstance(prompt, str):
            raise TypeError(f"{name}() takes prompts as str, not {type(prompt).__name__}")
        limit = self._ledger.budget.max_sub_prompt_chars
        if limit is not None and len(prompt) > limit:
            raise BudgetExceeded(
                "max_sub_prompt_chars", limit, len(prompt),
                f"prompt of {len(prompt):,} characters is over max_sub_prompt_chars={limit:,}; send a smaller chunk")

    @staticmethod
    def _check_query(query: Any) -> None:
        if not isinstance(query, str) or not query.strip():
            raise TypeError("rlm_query(query, context=None) takes the query as a non-empty str")

    def _check_model(self, model: Any, function: str) -> None:
        """The host picks the models: code may name ``sub_model`` or one of ``allowed_sub_models``,
        never another (a pricier one, or one with no price under a cost budget)."""
        if model is None or model == self._sub_model:
            return
        allowed = self._meter.settings.allowed_sub_models
        if isinstance(model, str) and model in allowed:
            return
        others = ", ".join(repr(name) for name in allowed) or "none"
        message = (f"{function}(model={str(model)[:200]!r}): this run does not let code choose that model. "
                   f"Leave model out to use the sub-model {self._sub_model!r}; other models allowed: {others} "
                   "(the host's allowed_sub_models setting).")
        self._events.emit(ev.SubCall, function=function, model=self._sub_model, outcome="refused", error=message,
                          **self.placement)
        raise ModelNotAllowed(message)

    def _reserve_sub_calls(self, function: str, model: str | None, count: int) -> None:
        try:
            self._ledger.reserve_sub_call(function, count=count)
        except BudgetExceeded as exc:
            self._events.emit(ev.SubCall, function=function, model=model or self._sub_model, outcome="refused",
                              error=str(exc), batch_size=count if function.endswith("batched") else None,
                              **self.placement)
            raise

    def _at_depth_limit(self) -> bool:
        return self.depth + 1 > self._ledger.budget.max_depth or self._child_runner is None

    # -- the one bridge from a callback thread to the run's loop ---------------------------

    def _bridge(self, coroutine: Coroutine[Any, Any, Any]) -> Any:
        """Run ``coroutine`` on the run's event loop and wait for it on this (callback) thread.

        Its task is made on the loop, where :meth:`close` runs too: a callback that arrives as
        the run ends is closed unstarted (never a "coroutine was never awaited" warning), and one
        being served is cancelled and can be waited for (:meth:`drain`)."""
        if self._closed:
            coroutine.close()
            raise RuntimeError("the run has ended; no more callbacks are served")
        future: Future[Any] = Future()
        self._loop.call_soon_threadsafe(self._begin, coroutine, future)
        return future.result()

    def _begin(self, coroutine: Coroutine[Any, Any, Any], future: Future[Any]) -> None:
        """On the loop: serve one callback as a task, unless the run has ended meanwhile."""
        if self._closed:
            coroutine.close()
            future.set_exception(RuntimeError("the run has ended; no more callbacks are served"))
            return
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(functools.partial(self._answer, future))

    def _answer(self, future: Future[Any], task: asyncio.Task[Any]) -> None:
        """On the loop: hand the task's outcome to the waiting callback thread."""
        self._tasks.discard(task)
        if task.cancelled():
            future.cancel()
        elif task.exception() is not None:
            future.set_exception(task.exception())
        else:
            future.set_result(task.result())

    # -- the async work ------------------------------------------------------------------

    def _slots(self) -> asyncio.Semaphore:
        if self._run_slots is None:
            self._run_slots = asyncio.Semaphore(self._ledger.budget.max_concurrency)
        return self._run_slots

    async def _complete(self, prompt: str, model: str | None, function: str, where: dict[str, Any]) -> str:
        """One sub-call: reserve, wait for a slot (this run's, then the process's), call, record."""
        model = model or self._sub_model
        messages = [{"role": "user", "content": prompt}]
        max_tokens = self._meter.settings.sub_max_tokens
        started = time.monotonic()
        call_id = new_call_id()
        summary = {"function": function, "call_id": call_id, "model": model, "prompt_chars": len(prompt), **where}
        try:
            # Reserved before a slot is taken: a call waiting for budget holds no slot.
            reservation = await self._reserve(model, messages, max_tokens)
        except BudgetExceeded as exc:
            self._events.emit(ev.SubCall, **{**summary, "call_id": None}, outcome="refused", error=str(exc))
            raise
        self._events.emit(ev.ModelRequest, call_id=call_id, role="sub", model=model, purpose="sub_call",
                          iteration=where.get("iteration"), messages=messages,
                          reserved_tokens=reservation.tokens if reservation else None)
        try:
            async with self._slots():
                completion = await on_model_loop(self._limited_call(model, messages, max_tokens, call_id))
        except BaseException as exc:
            self._meter.settle_failure(reservation, "sub", model, exc)
            error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, LLMError) else str(exc)
            self._events.emit(ev.ModelReply, call_id=call_id, role="sub", model=model, outcome="error",
                              error=error, latency_s=round(time.monotonic() - started, 4), **failure_fields(exc))
            self._events.emit(ev.SubCall, **summary, outcome="error", error=error,
                              duration_s=round(time.monotonic() - started, 4))
            raise
        self._meter.settle(reservation, "sub", completion)
        self._events.emit(ev.ModelReply, call_id=call_id, role="sub", model=model, outcome="ok",
                          text=completion.text, finish_reason=completion.finish_reason,
                          input_tokens=completion.input_tokens, output_tokens=completion.output_tokens,
                          cost_usd=completion.cost_usd, latency_s=round(completion.duration_s, 4),
                          attempts=completion.retries + 1, retries=retries_of(completion.retry_causes))
        self._events.emit(ev.SubCall, **summary, outcome="ok", response_chars=len(completion.text),
                          duration_s=round(time.monotonic() - started, 4))
        return completion.text

    async def _reserve(self, model: str, messages: list[dict[str, Any]], max_tokens: int) -> Any:
        if not self._meter.limits_spend:
            return None
        # Counting tokens and waiting for room block: off the loop.
        return await asyncio.to_thread(self._meter.reserve, "llm_query", model, messages, max_tokens)

    async def _limited_call(self, model: str, messages: list[dict[str, Any]], max_tokens: int,
                            call_id: str) -> Completion:
        """On the model loop: hold a process-wide slot for the duration of the call."""
        async with PROCESS_SLOTS.slot(self._meter.settings.max_process_concurrency):
            return await self._llm.acomplete(model, messages, max_tokens=max_tokens,
                                             price=self._meter.custom_price(model),
                                             on_retry=retry_reporter(self._events, call_id, "sub", model),
                                             **self._meter.call_options("sub"))

    async def _one_rlm_query(self, query: str, context: Any, where: dict[str, Any]) -> str:
        if self._at_depth_limit():
            return await self._fallback(query, context, where)
        self._ledger.reserve_sub_call("rlm_query")
        return await self._child(query, context, where)

    async def _fallback(self, query: str, context: Any, where: dict[str, Any]) -> str:
        """rlm_query at the depth limit: a plain sub-call with the context appended."""
        prompt = query if context is None else f"{query}\n\nContext:\n{context_text(context)}"
        self._events.emit(ev.DepthFallback, max_depth=self._ledger.budget.max_depth)
        self._check_prompt(prompt, "rlm_query")
        self._reserve_sub_calls("rlm_query", None, 1)
        return await self._complete(prompt, None, "rlm_query", where)

    async def _child(self, query: str, context: Any, where: dict[str, Any]) -> str:
        assert self._child_runner is not None
        async with self._slots():
            result = await self._child_runner(query, context, where)
        if result.status in ("budget_exhausted", "timeout") and self._ledger.exhausted is not None:
            raise self._ledger.exhausted
        if result.status == "error":
            raise LLMError(f"rlm_query child run failed: {result.error}", model=self._sub_model, transient=False)
        return result.answer

    async def _gather(self, jobs: Sequence[Callable[[], Coroutine[Any, Any, Any]]], what: str, model: str | None,
                      return_exceptions: bool) -> list[Any]:
        """The jobs' coroutines are made here, not by the caller: a batch that never runs (the run
        ended first) leaves no coroutine behind that was never awaited."""
        results = await asyncio.gather(*(job() for job in jobs), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException) and not isinstance(result, Exception):
                raise result  # cancelled: the run is ending
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
        return list(results)

    def close(self) -> None:
        """The run is over (call on the loop): refuse new callbacks and cancel those still running."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()

    async def drain(self) -> None:
        """Wait until every callback cancelled by :meth:`close` has ended (and written its events;
        a child run has closed its sandbox), so nothing of the run happens after its end."""
        while self._tasks:
            await asyncio.wait(list(self._tasks))


def _cell_name(exc: BaseException) -> str:
    """The exception's name as a cell can catch it (LLMAuthenticationError is an LLMError there)."""
    for cls in type(exc).__mro__:
        if cls.__name__ in CELL_EXCEPTIONS:
            return cls.__name__
    return type(exc).__name__



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
