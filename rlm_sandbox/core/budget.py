"""Limits of a run, and the thread-safe ledger that enforces them on the host.

The ledger is shared by a run, its sub-calls and its child runs, so every call at
every depth is counted in one place that code in a sandbox cannot reach.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import BudgetExceeded
from .result import ModelUsage


class Budget(BaseModel):
    """How much one run may spend. ``None`` means no limit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_iterations: int = Field(20, ge=1, description="root-model turns before a forced answer")
    max_sub_calls: int | None = Field(None, ge=0, description="llm_query/rlm_query/tool calls, all depths")
    max_depth: int = Field(1, ge=0, description="rlm_query nesting; at the limit it becomes llm_query")
    max_total_tokens: int | None = Field(None, ge=1, description="input + output tokens, all models")
    max_cost_usd: float | None = Field(None, gt=0, description="spend in USD, all models")
    max_wall_time_s: float | None = Field(None, gt=0, description="the whole run, in seconds")
    cell_timeout_s: float = Field(60.0, gt=0, description="kernel time per cell")
    max_output_chars: int = Field(30_000, ge=200, description="cell output shown to the model")
    max_sub_prompt_chars: int | None = Field(None, ge=1, description="longest llm_query prompt (refused "
                                             "per call; does not end the run)")
    max_concurrency: int = Field(16, ge=1, description="sub-calls in flight at once")


class Ledger:
    """Counts everything a run spends and says no, with numbers, past a limit."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self.iterations = 0
        self.sub_calls = 0
        self.code_executions = 0
        self._usage: dict[tuple[str, str], ModelUsage] = {}
        #: The first cumulative limit reached, at any depth: the run ends after the
        #: iteration in which it happened.
        self.exhausted: BudgetExceeded | None = None

    def _exceeded(self, limit: str, allowed: float, used: float, message: str) -> BudgetExceeded:
        exc = BudgetExceeded(limit, allowed, used, message)
        if self.exhausted is None:
            self.exhausted = exc
        return exc

    # -- spending -------------------------------------------------------------------

    def start_iteration(self) -> None:
        with self._lock:
            self.iterations += 1

    def count_code_execution(self) -> None:
        with self._lock:
            self.code_executions += 1

    def reserve_sub_call(self, what: str = "sub-call", count: int = 1) -> None:
        """Count ``count`` sub-calls, or raise BudgetExceeded (counting none) if they do not fit."""
        with self._lock:
            limit = self.budget.max_sub_calls
            if limit is not None and self.sub_calls + count > limit:
                wanted = "" if count == 1 else f" for {count} calls"
                raise self._exceeded("max_sub_calls", limit, self.sub_calls,
                                     f"no {what} left{wanted}: {self.sub_calls} of max_sub_calls={limit} used")
            self.sub_calls += count
        self.check_spend()

    def record(self, role: str, model: str, input_tokens: int, output_tokens: int, cost_usd: float) -> None:
        with self._lock:
            usage = self._usage.setdefault((role, model), ModelUsage(model=model, role=role))  # type: ignore[arg-type]
            usage.calls += 1
            usage.input_tokens += input_tokens
            usage.output_tokens += output_tokens
            usage.cost_usd += cost_usd

    # -- checks ---------------------------------------------------------------------

    def check_spend(self) -> None:
        """Raise BudgetExceeded if tokens, cost or wall time are used up."""
        budget = self.budget
        tokens, cost = self.total_tokens, self.cost_usd
        if budget.max_total_tokens is not None and tokens >= budget.max_total_tokens:
            raise self._exceeded("max_total_tokens", budget.max_total_tokens, tokens,
                                 f"token budget used up: {tokens} of max_total_tokens={budget.max_total_tokens}")
        if budget.max_cost_usd is not None and cost >= budget.max_cost_usd:
            raise self._exceeded("max_cost_usd", budget.max_cost_usd, round(cost, 6),
                                 f"cost budget used up: ${cost:.4f} of max_cost_usd=${budget.max_cost_usd}")
        self.check_time()

    def check_time(self) -> None:
        limit = self.budget.max_wall_time_s
        elapsed = self.elapsed_s
        if limit is not None and elapsed >= limit:
            raise self._exceeded("max_wall_time_s", limit, round(elapsed, 2),
                                 f"wall time used up: {elapsed:.1f} s of max_wall_time_s={limit}")

    def remaining_time_s(self) -> float | None:
        limit = self.budget.max_wall_time_s
        return None if limit is None else max(0.0, limit - self.elapsed_s)

    # -- reading --------------------------------------------------------------------

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def usage(self) -> list[ModelUsage]:
        with self._lock:
            return [ModelUsage(**vars(u)) for u in self._usage.values()]

    @property
    def input_tokens(self) -> int:
        with self._lock:
            return sum(u.input_tokens for u in self._usage.values())

    @property
    def output_tokens(self) -> int:
        with self._lock:
            return sum(u.output_tokens for u in self._usage.values())

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def cost_usd(self) -> float:
        with self._lock:
            return sum(u.cost_usd for u in self._usage.values())

    def status(self) -> dict[str, Any]:
        """What budget_status() shows inside the sandbox: limits and what is used."""
        budget = self.budget
        return {
            "iterations": {"used": self.iterations, "limit": budget.max_iterations, "note": "all depths"},
            "sub_calls": {"used": self.sub_calls, "limit": budget.max_sub_calls},
            "total_tokens": {"used": self.total_tokens, "limit": budget.max_total_tokens},
            "cost_usd": {"used": round(self.cost_usd, 6), "limit": budget.max_cost_usd},
            "wall_time_s": {"used": round(self.elapsed_s, 2), "limit": budget.max_wall_time_s},
        }
