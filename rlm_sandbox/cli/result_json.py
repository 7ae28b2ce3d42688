"""What ``--json`` prints: the result of a run, in a documented, versioned shape.

The fields are those of ``RLMResult`` a script needs (the trajectory is the ``--trace``
file's job, the conversation too), plus what a script must not have to work out: whether
the answer is a FINAL one, the cost as text (``unknown`` when a price is unknown, never
$0) and how much of each budget was used. README "Command line" documents every field;
a test checks that it does.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, Field

JSON_SCHEMA_VERSION = 1


class ModelUse(BaseModel):
    model: str
    role: Literal["root", "sub"] = Field(description="root: the root model (and child runs' roots are sub); "
                                         "sub: llm_query and child runs")
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float | None = Field(description="null when the model has no known price")


class BudgetUse(BaseModel):
    used: float | None = Field(description="null for a cost that is unknown")
    limit: float | None = Field(description="null: no limit was set")


class ResultJSON(BaseModel):
    schema_version: int = JSON_SCHEMA_VERSION
    answer: str
    answer_from: str = Field(description="final, answer_now, last_reply or none")
    is_final: bool = Field(description="the answer is the model's FINAL (only then is status completed)")
    status: str = Field(description="completed, max_iterations, budget_exhausted, timeout or error")
    error: str | None
    iterations: int
    code_executions: int
    sub_calls: int
    total_input_tokens: int
    total_output_tokens: int
    cost_usd: float | None
    cost: str = Field(description='"$0.0123" or "unknown"')
    usage: list[ModelUse]
    budget: dict[str, BudgetUse] = Field(description="iterations, sub_calls, total_tokens, cost_usd, wall_time_s")
    duration_s: float
    parsed: Any = None
    trace: str | None = Field(None, description="the --trace file")
    html: str | None = Field(None, description="the --html file")


def budget_use(result: Any, settings: Any) -> dict[str, BudgetUse]:
    """Each limit and what the run used of it (iterations are counted at every depth, as the
    ledger counts them)."""
    iterations = sum(1 for event in result.trajectory if event.event == "iteration") or result.iterations
    tokens = result.total_input_tokens + result.total_output_tokens
    return {"iterations": BudgetUse(used=iterations, limit=settings.max_iterations),
            "sub_calls": BudgetUse(used=result.sub_calls, limit=settings.max_sub_calls),
            "total_tokens": BudgetUse(used=tokens, limit=settings.max_total_tokens),
            "cost_usd": BudgetUse(used=result.cost_usd, limit=settings.max_cost_usd),
            "wall_time_s": BudgetUse(used=round(result.duration_s, 3), limit=settings.max_wall_time_s)}


def result_json(result: Any, settings: Any, *, trace: str | None = None, html: str | None = None) -> str:
    cost = "unknown" if result.cost_usd is None else f"${result.cost_usd:.4f}"
    parsed = result.parsed.model_dump(mode="json") if hasattr(result.parsed, "model_dump") else result.parsed
    report = ResultJSON(
        answer=result.answer, answer_from=result.answer_from, is_final=result.answer_from == "final",
        status=result.status, error=result.error, iterations=result.iterations,
        code_executions=result.code_executions, sub_calls=result.sub_calls,
        total_input_tokens=result.total_input_tokens, total_output_tokens=result.total_output_tokens,
        cost_usd=result.cost_usd, cost=cost,
        usage=[ModelUse(model=u.model, role=u.role, calls=u.calls, input_tokens=u.input_tokens,
                        output_tokens=u.output_tokens, cost_usd=u.cost_usd) for u in result.usage],
        budget=budget_use(result, settings), duration_s=round(result.duration_s, 3), parsed=parsed,
        trace=trace, html=html)
    return json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False, default=str)
