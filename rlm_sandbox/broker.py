"""The host functions a sandbox may call back, for one run.

Every sub-call passes through here, so this is where the ledger counts and refuses,
where concurrency is bounded, and where the trajectory records what was asked. The
sandbox sees only the functions' names and docstrings.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

from .budget import Ledger
from .errors import BudgetExceeded, LLMError
from .llm import LLMClient
from .trace import Trace

#: Exception names a cell can catch by name (``except BudgetExceeded:``).
CELL_EXCEPTIONS = ("BudgetExceeded", "LLMError")


class Broker:
    def __init__(self, *, llm: LLMClient, ledger: Ledger, trace: Trace, sub_model: str) -> None:
        self._llm = llm
        self._ledger = ledger
        self._trace = trace
        self._sub_model = sub_model
        self._slots = threading.BoundedSemaphore(ledger.budget.max_concurrency)
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.budget_hit: BudgetExceeded | None = None

    def callbacks(self) -> dict[str, Callable[..., Any]]:
        return {"llm_query": self.llm_query, "llm_query_batched": self.llm_query_batched,
                "budget_status": self.budget_status}

    # -- the functions the sandbox sees -----------------------------------------------

    def llm_query(self, prompt: str, model: str | None = None) -> str:
        """llm_query(prompt, model=None) -> str: ask a sub-model; it sees only the prompt."""
        self._check_prompt(prompt, "llm_query")
        self._reserve("llm_query")
        return self._complete(prompt, model)

    def llm_query_batched(self, prompts: list[str], model: str | None = None) -> list[str]:
        """llm_query_batched(prompts, model=None) -> list[str]: many prompts concurrently, answers in order."""
        if not isinstance(prompts, list):
            raise TypeError("llm_query_batched(prompts) takes a list of strings")
        for prompt in prompts:
            self._check_prompt(prompt, "llm_query_batched")
        for _ in prompts:
            self._reserve("llm_query_batched")
        futures = [self._executor().submit(self._complete_or_error, prompt, model) for prompt in prompts]
        results = [future.result() for future in futures]
        failures = [(i, r) for i, r in enumerate(results) if isinstance(r, Exception)]
        if failures:
            first_index, first = failures[0]
            if isinstance(first, BudgetExceeded):
                raise first
            raise LLMError(f"{len(failures)} of {len(prompts)} sub-calls failed; the first (prompt "
                           f"{first_index}): {first}", model=model or self._sub_model,
                           transient=getattr(first, "transient", False))
        return results  # type: ignore[return-value]

    def budget_status(self) -> dict[str, Any]:
        """budget_status() -> dict: the run's limits and what is used (read-only)."""
        return self._ledger.status()

    # -- internals -------------------------------------------------------------------

    def _check_prompt(self, prompt: Any, name: str) -> None:
        if not isinstance(prompt, str):
            raise TypeError(f"{name}() takes prompts as str, not {type(prompt).__name__}")
        limit = self._ledger.budget.max_sub_prompt_chars
        if limit is not None and len(prompt) > limit:
            raise self._hit(BudgetExceeded(
                "max_sub_prompt_chars", limit, len(prompt),
                f"prompt of {len(prompt):,} characters is over max_sub_prompt_chars={limit:,}; "
                "send a smaller chunk"))

    def _reserve(self, what: str) -> None:
        try:
            self._ledger.reserve_sub_call(what)
        except BudgetExceeded as exc:
            raise self._hit(exc) from None

    def _hit(self, exc: BudgetExceeded) -> BudgetExceeded:
        self.budget_hit = self.budget_hit or exc
        return exc

    def _complete(self, prompt: str, model: str | None) -> str:
        model = model or self._sub_model
        started = time.monotonic()
        with self._slots:
            try:
                completion = self._llm.complete(model, [{"role": "user", "content": prompt}])
            except LLMError as exc:
                self._trace.emit("sub_call", model=model, prompt=prompt, error=str(exc),
                                 duration_s=round(time.monotonic() - started, 4))
                raise
        self._ledger.record("sub", model, completion.input_tokens,
                            completion.output_tokens, completion.cost_usd)
        self._trace.emit("sub_call", model=model, prompt=prompt, response=completion.text,
                         input_tokens=completion.input_tokens, output_tokens=completion.output_tokens,
                         duration_s=round(time.monotonic() - started, 4))
        return completion.text

    def _complete_or_error(self, prompt: str, model: str | None) -> str | Exception:
        try:
            return self._complete(prompt, model)
        except Exception as exc:  # noqa: BLE001 - collected and reported for the batch
            return exc

    def _executor(self) -> ThreadPoolExecutor:
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self._ledger.budget.max_concurrency,
                                                thread_name_prefix="rlm-sub-call")
            return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
