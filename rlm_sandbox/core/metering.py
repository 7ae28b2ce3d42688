"""Around every model call: reserve its most expensive outcome first, settle it after.

Every model call is a ``ModelCall`` (``core/model_call.py``); this is the one place that
knows a model's price (a custom price from the settings, else litellm's price map), counts
a prompt's tokens, and turns a call into a reservation on the shared ledger and back (how
the budget pieces fit: ``core/budget.py``). Counting and waiting for room block, so callers
run these on a thread, never on the event loop.
"""

from __future__ import annotations

import threading
from typing import Any

from ..config import Settings
from ..errors import BudgetNotEnforceable, LLMError
from ..models.base import Completion, ModelClient, Price
from ..models.prompt_cache import with_marks
from .budget import Ledger, Reservation


class Meter:
    """Prices, token counts and reservations for one run (shared by its broker)."""

    def __init__(self, ledger: Ledger, llm: ModelClient, settings: Settings) -> None:
        self.ledger, self.llm, self.settings = ledger, llm, settings
        self._prices: dict[str, Price | None] = {}
        self._lock = threading.Lock()

    @property
    def limits_spend(self) -> bool:
        """True when a token or cost limit is set, so calls must reserve before they are sent."""
        budget = self.ledger.budget
        return budget.max_total_tokens is not None or budget.max_cost_usd is not None

    def price(self, model: str) -> Price | None:
        """The price a call to `model` is charged at: the settings' custom price, else litellm's."""
        with self._lock:
            if model not in self._prices:
                self._prices[model] = self.settings.custom_price(model) or self.llm.price_of(model)
            return self._prices[model]

    def custom_price(self, model: str) -> Price | None:
        """The price to hand litellm with the call (custom pricing), when one was given."""
        return self.settings.custom_price(model)

    def check_prices(self, models: list[str]) -> None:
        """Refuse, before anything starts, a cost limit that cannot be enforced."""
        limit = self.ledger.budget.max_cost_usd
        if limit is None:
            return
        for role, model in zip(("root model", "sub-model"), models, strict=False):
            if self.price(model) is None:
                prefix = "" if role == "root model" else "sub_"
                raise BudgetNotEnforceable(
                    f"max_cost_usd={limit} cannot be enforced: the {role} {model!r} has no known price "
                    f"(litellm's price map does not list it). Give its price in USD per token with "
                    f"{prefix}input_cost_per_token and {prefix}output_cost_per_token (e.g. --set "
                    f"{prefix}input_cost_per_token=0.0000005 --set {prefix}output_cost_per_token=0.0000015; "
                    "0 for a free local model), or drop max_cost_usd.")

    def warm_up(self, models: list[str]) -> None:
        """Load the tokenizers a run will count with (up to a second each, once per process)."""
        if self.limits_spend:
            for model in set(models):
                self.llm.count_tokens(model, text="warm up")

    def reserve(self, what: str, model: str, messages: list[dict[str, Any]], max_tokens: int) -> Reservation | None:
        """Reserve what the call may spend at most, or raise BudgetExceeded (may wait for room).
        The prompt is priced at its dearest (``Price.ceiling``): what the provider will read from
        or write to its cache is unknown before the call, and a cache write may cost more than input."""
        if not self.limits_spend:
            return None
        prompt_tokens = self.llm.count_tokens(model, messages)
        price = self.price(model)
        cost = price.ceiling(prompt_tokens, max_tokens) if price is not None else None
        return self.ledger.reserve(what, prompt_tokens, max_tokens, cost)

    def settle(self, reservation: Reservation | None, role: str, completion: Completion) -> None:
        """Replace the reservation by what the call was billed: the cost is cache-aware (cached
        prompt tokens at their price), so a run whose prompts repeat does more within a budget."""
        self.ledger.settle(reservation, role, completion.model, completion.input_tokens,
                           completion.output_tokens, completion.cost_usd, attempts=completion.retries + 1,
                           cached_input_tokens=completion.cached_input_tokens,
                           cache_write_tokens=completion.cache_write_tokens)

    def settle_failure(self, reservation: Reservation | None, role: str, model: str, error: BaseException,
                       *, sent: bool = True) -> None:
        """A failed call: release its reservation, keeping what it was still charged (empty replies)
        and how many requests it sent (none when ``sent`` is False: it never started)."""
        attempts = getattr(error, "attempts", 1) if sent else 0
        if isinstance(error, LLMError):
            self.ledger.settle(reservation, role, model, error.input_tokens, error.output_tokens,
                               error.cost_usd, answered=False, attempts=attempts,
                               cached_input_tokens=error.cached_input_tokens,
                               cache_write_tokens=error.cache_write_tokens)
        else:
            self.ledger.settle(reservation, role, model, 0, 0, 0.0, answered=False, attempts=attempts)

    def call_options(self, role: str, *, model: str | None = None, conversation: bool = False) -> dict[str, Any]:
        """``{"options": ...}`` for a model call in ``role``, or nothing when there are none: a
        ModelClient written before options existed keeps working without them. A
        ``conversation`` (a root request, at any depth) to ``model`` gets cache marks where its
        provider needs them (``prompt_cache``, ``models/prompt_cache.py``)."""
        options = self.settings.model_options_for("root" if role == "root" else "sub")
        if conversation and model is not None:
            options = with_marks(model, options, self.settings.prompt_cache)
        return {"options": options} if options else {}
