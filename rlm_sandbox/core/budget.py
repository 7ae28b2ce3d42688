"""Limits of a run, and the thread-safe ledger that enforces them on the host.

The ledger is shared by a run, its sub-calls and its child runs, so every call at
every depth is counted in one place that code in a sandbox cannot reach.

Tokens and dollars are reserved before a model call is sent: the prompt's tokens as
litellm counts them plus the call's ``max_tokens``, priced at the model's per-token price.
A call whose reservation does not fit beside what is spent and what other calls in flight
hold waits for them to settle, and is refused when it still does not fit. On reply the
reservation is replaced by what the provider reports, so concurrent calls cannot jointly
spend past a limit; the only overshoot left is a provider counting more prompt tokens than
litellm's counter (or ignoring max_tokens) — see README "Budgets".

How the pieces fit. :class:`Budget` is the limits a user sets; its fields are declared once,
in :class:`BudgetFields`, because ``Settings`` takes the same fields (a frozen ``Budget``
cannot be its base). A root run's :class:`Ledger` enforces them: one per root run, shared
by its sub-calls and child runs, it counts what is spent and holds a :class:`Reservation`
for each model call in flight. The ``Meter`` (``core/metering.py``) is the ledger's price
list and token counter: it turns a call's messages into a reservation and its reply into
usage. A ``ModelCall`` (``core/model_call.py``) is the only caller of both, for root calls
and sub-calls alike. How many calls run at once is not money and lives elsewhere: the
broker's per-run semaphore (``max_concurrency``) and ``PROCESS_SLOTS``
(``core/concurrency.py``, ``max_process_concurrency`` across every run of the process).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import BudgetExceeded
from .result import ModelUsage


#: The setting that bounds a call's reply, by the ``what`` its caller names (for refusals).
_MAX_TOKENS_SETTING = {"llm_query": "sub_max_tokens", "root model call": "max_tokens", "child root call": "max_tokens"}


class BudgetFields(BaseModel):
    """The limits of a run's spending, defined once: ``Budget`` freezes them, and a run's
    ``Settings`` takes these fields as they are. ``None`` means no limit."""

    max_iterations: int = Field(20, ge=1, description="root-model turns before a forced answer")
    max_sub_calls: int | None = Field(None, ge=0, description="llm_query/rlm_query/tool calls, all depths")
    max_depth: int = Field(1, ge=0, description="rlm_query nesting; at the limit it becomes llm_query")
    max_total_tokens: int | None = Field(None, ge=1, description="input + output tokens, all models")
    max_cost_usd: float | None = Field(None, gt=0, description="spend in USD, all models")
    max_wall_time_s: float | None = Field(None, gt=0, description="the whole run, in seconds")
    max_sub_prompt_chars: int | None = Field(None, ge=1, description="longest llm_query prompt (refused "
                                             "per call; does not end the run)")
    max_concurrency: int = Field(16, ge=1, description="sub-calls in flight at once, per run")


class Budget(BudgetFields):
    """How much one run may spend: ``RLM(budget=Budget(max_cost_usd=1.5, ...))``."""

    model_config = ConfigDict(frozen=True, extra="forbid")


@dataclass
class Reservation:
    """What one model call may spend at most, set aside until it settles."""

    tokens: int
    cost_usd: float
    open: bool = True


class Ledger:
    """Counts everything a run spends and says no, with numbers, past a limit."""

    def __init__(self, budget: Budget) -> None:
        self.budget = budget
        self.started = time.monotonic()
        self._lock = threading.Lock()
        self._settled = threading.Condition(self._lock)
        self._reserved_tokens = 0
        self._reserved_cost = 0.0
        self._open_reservations = 0
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

    def restart_clock(self) -> None:
        """Start the wall-time budget now: the run starts after its setup (importing litellm)."""
        self.started = time.monotonic()

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

    def reserve(self, what: str, prompt_tokens: int, max_tokens: int, cost_usd: float | None) -> Reservation:
        """Set aside what a call may spend at most (`prompt_tokens` + `max_tokens`, costing at
        most `cost_usd`, None when the model has no price), or raise BudgetExceeded.

        A call that does not fit while other calls hold reservations waits for them to
        settle (their real usage is usually far below what they hold); it is refused when it
        still does not fit with none outstanding, or when the wall-time budget runs out.
        """
        tokens = prompt_tokens + max_tokens
        if cost_usd is None and self.budget.max_cost_usd is not None:  # refuses this call, not the run
            raise BudgetExceeded("max_cost_usd", self.budget.max_cost_usd, 0.0,
                                 f"no {what}: its model has no known price, so max_cost_usd cannot be enforced "
                                 "for it; use the run's model or sub-model, or one litellm has a price for")
        with self._lock:
            while True:
                refusal = self._refusal(what, prompt_tokens, max_tokens, cost_usd)
                if refusal is None:
                    self._reserved_tokens += tokens
                    self._reserved_cost += cost_usd or 0.0
                    self._open_reservations += 1
                    return Reservation(tokens, cost_usd or 0.0)
                remaining = self.remaining_time_s()
                if self._open_reservations == 0 or remaining == 0:
                    raise self._exceeded(*refusal)
                self._settled.wait(remaining)

    def _refusal(self, what: str, prompt_tokens: int, max_tokens: int,
                 cost_usd: float | None) -> tuple[str, float, float, str] | None:
        budget = self.budget
        tokens = prompt_tokens + max_tokens
        setting = _MAX_TOKENS_SETTING.get(what, "max_tokens")
        if budget.max_total_tokens is not None:
            used = self._sum("input_tokens") + self._sum("output_tokens")
            if used + self._reserved_tokens + tokens > budget.max_total_tokens:
                room = budget.max_total_tokens - used - self._reserved_tokens - prompt_tokens
                fix = (f"; the prompt alone fits: {setting} below {room:,} would let it through (the whole "
                       f"max_tokens is reserved for the reply), or raise max_total_tokens" if room > 0 else "")
                return ("max_total_tokens", budget.max_total_tokens, used,
                        f"no {what}: it may use {tokens:,} tokens ({prompt_tokens:,} prompt + max_tokens "
                        f"{max_tokens:,}), and {used:,} are used and {self._reserved_tokens:,} held by calls in "
                        f"flight of max_total_tokens={budget.max_total_tokens:,}{fix}")
        if budget.max_cost_usd is not None and cost_usd is not None:
            spent = self._known_cost()
            if spent + self._reserved_cost + cost_usd > budget.max_cost_usd:
                return ("max_cost_usd", budget.max_cost_usd, round(spent, 6),
                        f"no {what}: it may cost ${cost_usd:.4f} (its prompt and all of max_tokens {max_tokens:,} "
                        f"priced as output), and ${spent:.4f} is spent and ${self._reserved_cost:.4f} held by calls "
                        f"in flight of max_cost_usd=${budget.max_cost_usd}; a smaller {setting} reserves less")
        return None

    def settle(self, reservation: Reservation | None, role: str, model: str, input_tokens: int,
               output_tokens: int, cost_usd: float | None, *, answered: bool = True, attempts: int = 1,
               cached_input_tokens: int = 0, cache_write_tokens: int = 0) -> None:
        """Replace a reservation by what the call really used (zero for a call that failed
        unpaid); `answered=False` records a failed call; `attempts` is how many requests it sent.
        ``cost_usd`` is what was billed, cache discounts included; ``cached_input_tokens`` and
        ``cache_write_tokens`` are parts of ``input_tokens`` (token limits count the whole prompt)."""
        with self._lock:
            self._release(reservation)
            usage = self._usage.setdefault((role, model), ModelUsage(model=model, role=role))  # type: ignore[arg-type]  # "root" or "sub", typed str on the way
            usage.calls += 1 if answered else 0
            usage.failed_calls += 0 if answered else 1
            usage.attempts += attempts
            usage.input_tokens += input_tokens
            usage.output_tokens += output_tokens
            usage.cached_input_tokens += cached_input_tokens
            usage.cache_write_tokens += cache_write_tokens
            usage.cost_usd = None if cost_usd is None or usage.cost_usd is None else usage.cost_usd + cost_usd
            self._settled.notify_all()

    def _release(self, reservation: Reservation | None) -> None:
        if reservation is not None and reservation.open:
            reservation.open = False
            self._reserved_tokens -= reservation.tokens
            self._reserved_cost -= reservation.cost_usd
            self._open_reservations -= 1

    def record(self, role: str, model: str, input_tokens: int, output_tokens: int, cost_usd: float | None) -> None:
        """Count a call that held no reservation."""
        self.settle(None, role, model, input_tokens, output_tokens, cost_usd)

    # -- checks ---------------------------------------------------------------------

    def check_spend(self) -> None:
        """Raise BudgetExceeded if tokens, cost or wall time are used up."""
        budget = self.budget
        tokens, cost = self.total_tokens, self.known_cost_usd
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

    def _sum(self, field: str) -> int:
        return sum(getattr(u, field) for u in self._usage.values())

    def _known_cost(self) -> float:
        return sum(u.cost_usd or 0.0 for u in self._usage.values())

    @property
    def input_tokens(self) -> int:
        with self._lock:
            return self._sum("input_tokens")

    @property
    def cached_input_tokens(self) -> int:
        """The part of ``input_tokens`` the providers read from their prompt caches."""
        with self._lock:
            return self._sum("cached_input_tokens")

    @property
    def output_tokens(self) -> int:
        with self._lock:
            return self._sum("output_tokens")

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    @property
    def known_cost_usd(self) -> float:
        """USD spent on models with a known price."""
        with self._lock:
            return self._known_cost()

    @property
    def cost_usd(self) -> float | None:
        """USD spent; None (unknown) when any model used has no known price."""
        with self._lock:
            if any(u.cost_usd is None for u in self._usage.values()):
                return None
            return self._known_cost()

    def status(self) -> dict[str, Any]:
        """What budget_status() shows inside the sandbox: limits and what is used."""
        budget = self.budget
        return {
            "iterations": {"used": self.iterations, "limit": budget.max_iterations, "note": "all depths"},
            "sub_calls": {"used": self.sub_calls, "limit": budget.max_sub_calls},
            "total_tokens": {"used": self.total_tokens, "limit": budget.max_total_tokens},
            "cost_usd": {"used": None if (cost := self.cost_usd) is None else round(cost, 6),
                         "limit": budget.max_cost_usd, **({"note": "unknown: a model has no price"}
                                                          if cost is None else {})},
            "wall_time_s": {"used": round(self.elapsed_s, 2), "limit": budget.max_wall_time_s},
        }
