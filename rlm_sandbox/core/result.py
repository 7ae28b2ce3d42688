"""RLMResult: what a run returns, whatever way it ended."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal, get_args

from ..events.types import LIMIT_STATUSES, Status

__all__ = ["AnswerSource", "LIMIT_STATUSES", "ModelUsage", "RLMResult", "STATUSES", "Status"]

#: Every value of :data:`Status` (defined once, in ``events.types``, which the loop may import
#: and which may not import the loop), for checks at run time.
STATUSES: frozenset[str] = frozenset(get_args(Status))
#: Where ``answer`` came from: the model's FINAL (in code or in text) during the run; the
#: extra answer-now call made when the run ended without one; the model's last reply
#: (no extra call was possible); or nowhere (no reply at all).
AnswerSource = Literal["final", "answer_now", "last_reply", "none"]


@dataclass
class ModelUsage:
    """Calls, tokens and cost of one model in one role (the root, or sub-calls).

    ``calls`` counts calls that were answered; ``attempts`` every request sent to the
    provider (retried attempts and calls that failed in the end included: some providers
    bill them); ``failed_calls`` the calls that failed after their retries. ``cost_usd`` is
    None when the model has no known price: unknown, never $0. ``cached_input_tokens`` (read
    from the provider's prompt cache) and ``cache_write_tokens`` (written to it, where the
    provider bills writes) are parts of ``input_tokens``, charged at their own prices."""

    model: str
    role: Literal["root", "sub"]
    calls: int = 0
    attempts: int = 0
    failed_calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float | None = 0.0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0


@dataclass
class RLMResult:
    """What a run returns. Only ``answer_from == "final"`` is an answer the model gave with
    FINAL during the run (and only then is ``status`` "completed"); ``cost_usd`` is None when
    a model used has no known price (``usage`` shows which)."""

    answer: str
    iterations: int
    total_input_tokens: int
    total_output_tokens: int
    code_executions: int
    sub_calls: int
    history: list[dict[str, Any]]
    status: Status = "completed"
    cost_usd: float | None = 0.0
    usage: list[ModelUsage] = field(default_factory=list)
    duration_s: float = 0.0
    trajectory: list[Any] = field(default_factory=list)  # typed events (rlm_sandbox.events.types)
    error: str | None = None
    parsed: Any = None
    answer_from: AnswerSource = "none"

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    @property
    def total_cached_input_tokens(self) -> int:
        """The part of ``total_input_tokens`` read from providers' prompt caches (summed from
        ``usage``, which counts every call at every depth, as the totals do)."""
        return sum(u.cached_input_tokens for u in self.usage)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-compatible data; the trajectory as the events' JSON form."""
        trajectory, parsed = self.trajectory, self.parsed
        self.trajectory, self.parsed = [], None  # asdict would deep-copy them
        try:
            data = asdict(self)
        finally:
            self.trajectory, self.parsed = trajectory, parsed
        data["trajectory"] = [event.model_dump(mode="json", by_alias=True) for event in trajectory]
        data["parsed"] = parsed.model_dump(mode="json") if hasattr(parsed, "model_dump") else parsed
        data["total_cached_input_tokens"] = self.total_cached_input_tokens
        return data
