"""RLMResult: what a run returns, whatever way it ended."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Status = Literal["completed", "max_iterations", "budget_exhausted", "timeout", "error"]


@dataclass
class ModelUsage:
    """Calls, tokens and cost of one model in one role (the root, or sub-calls)."""

    model: str
    role: Literal["root", "sub"]
    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@dataclass
class RLMResult:
    answer: str
    iterations: int
    total_input_tokens: int
    total_output_tokens: int
    code_executions: int
    sub_calls: int
    history: list[dict[str, Any]]
    status: Status = "completed"
    cost_usd: float = 0.0
    usage: list[ModelUsage] = field(default_factory=list)
    duration_s: float = 0.0
    trajectory: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    parsed: Any = None

    @property
    def ok(self) -> bool:
        return self.status == "completed"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.parsed is not None and hasattr(self.parsed, "model_dump"):
            data["parsed"] = self.parsed.model_dump(mode="json")
        return data
