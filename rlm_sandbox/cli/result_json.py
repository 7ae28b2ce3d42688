"""What ``--json`` prints: the result of a run, in a documented, versioned shape.

The fields are those of ``RLMResult`` a script needs (the trajectory is the ``--trace``
file's job, the conversation too), plus what a script must not have to work out: whether
the answer is a FINAL one, the cost as text (``unknown`` when a price is unknown, never
$0) and how much of each budget was used. README "Command line" documents every field;
a test checks that it does.

On a terminal (:func:`terminal_json`) the same JSON is written with every control, C1 or
bidi character a model wrote as a ``\\uXXXX`` escape: still the same JSON, but nothing a
terminal would obey.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..untrusted import visible

JSON_SCHEMA_VERSION = 1


class ModelUse(BaseModel):
    model: str
    role: Literal["root", "sub"] = Field(description="root: the root model (and child runs' roots are sub); "
                                         "sub: llm_query and child runs")
    calls: int = Field(description="calls answered")
    attempts: int = Field(description="requests sent to the provider, retries and failed calls included "
                          "(some providers bill them)")
    failed_calls: int = Field(description="calls that failed after their retries")
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = Field(0, description="part of input_tokens read from the provider's prompt cache")
    cache_write_tokens: int = Field(0, description="part of input_tokens written to the provider's prompt cache")
    cost_usd: float | None = Field(description="null when the model has no known price")


class BudgetUse(BaseModel):
    used: int | float | None = Field(description="an integer for counts (iterations, sub_calls, total_tokens); "
                                     "null for a cost that is unknown")
    limit: int | float | None = Field(description="null: no limit was set")
    reached: bool = Field(False, description="this limit ended the run")
    note: str | None = Field(None, description="why used is above limit, when it is")


#: The ``budget`` key of each budget setting a ``budget_exhausted`` event names.
_BUDGET_KEYS = {"max_iterations": "iterations", "max_sub_calls": "sub_calls", "max_total_tokens": "total_tokens",
                "max_cost_usd": "cost_usd", "max_wall_time_s": "wall_time_s"}
#: Why a limit can be passed (README "Budgets"): said in ``note`` when ``used`` is above ``limit``.
_OVER = {"total_tokens": "the provider counted more tokens than litellm's counter reserved for the call",
         "cost_usd": "the provider counted more tokens than litellm's counter reserved for the call",
         "wall_time_s": "wall time is checked between steps: the step running when it ran out, and the "
                        "answer-now call after it, still took their time",
         "sub_calls": "more sub-calls were counted than the limit allows"}


class ResultJSON(BaseModel):
    schema_version: int = JSON_SCHEMA_VERSION
    answer: str
    answer_from: str = Field(description="final, answer_now, last_reply or none")
    is_final: bool = Field(description="the answer is the model's FINAL (only then is status completed)")
    status: str = Field(description="completed, max_iterations, budget_exhausted, timeout, stalled or error")
    error: str | None
    iterations: int
    code_executions: int
    sub_calls: int
    total_input_tokens: int
    total_output_tokens: int
    total_cached_input_tokens: int = Field(0, description="part of total_input_tokens read from prompt caches")
    cost_usd: float | None
    cost: str = Field(description='"$0.0123" or "unknown"')
    usage: list[ModelUse]
    budget: dict[str, BudgetUse] = Field(description="iterations, sub_calls, total_tokens, cost_usd, wall_time_s")
    duration_s: float
    parsed: Any = None
    trace: str | None = Field(None, description="the --trace file")
    html: str | None = Field(None, description="the --html file")


def budget_use(result: Any, settings: Any) -> dict[str, BudgetUse]:
    """Each limit, what the run used of it and whether it ended the run.

    ``iterations`` are the root run's turns, as ``max_iterations`` limits them (each child run
    has its own): the answer-now call after the last turn is not one, so ``used`` never
    passes ``limit``. A limit that was passed anyway says why in ``note``.
    """
    iterations = result.iterations
    tokens = result.total_input_tokens + result.total_output_tokens
    used: dict[str, tuple[int | float | None, int | float | None]] = {
        "iterations": (iterations, settings.max_iterations),
        "sub_calls": (result.sub_calls, settings.max_sub_calls),
        "total_tokens": (tokens, settings.max_total_tokens),
        "cost_usd": (result.cost_usd, settings.max_cost_usd),
        "wall_time_s": (round(result.duration_s, 3), settings.max_wall_time_s)}
    ended = {_BUDGET_KEYS.get(event.limit) for event in result.trajectory if event.event == "budget_exhausted"}
    if result.status == "max_iterations":
        ended.add("iterations")
    budget = {}
    for key, (amount, limit) in used.items():
        over = amount is not None and limit is not None and amount > limit
        budget[key] = BudgetUse(used=amount, limit=limit, reached=key in ended and result.status != "completed",
                                note=_OVER.get(key) if over else None)
    return budget


def terminal_json(text: str) -> str:
    """``text`` (JSON) with each character :func:`visible` would escape written as a JSON
    ``\\uXXXX`` escape (``json.dumps`` already escapes C0 controls): the same data."""
    return _NON_ASCII.sub(lambda match: match.group() if visible(match.group()) == match.group()
                          else f"\\u{ord(match.group()):04x}", text)


_NON_ASCII = re.compile(r"[^\x00-\x7e]")


def result_json(result: Any, settings: Any, *, trace: str | None = None, html: str | None = None) -> str:
    cost = "unknown" if result.cost_usd is None else f"${result.cost_usd:.4f}"
    parsed = result.parsed.model_dump(mode="json") if hasattr(result.parsed, "model_dump") else result.parsed
    report = ResultJSON(
        answer=result.answer, answer_from=result.answer_from, is_final=result.answer_from == "final",
        status=result.status, error=result.error, iterations=result.iterations,
        code_executions=result.code_executions, sub_calls=result.sub_calls,
        total_input_tokens=result.total_input_tokens, total_output_tokens=result.total_output_tokens,
        total_cached_input_tokens=result.total_cached_input_tokens, cost_usd=result.cost_usd, cost=cost,
        usage=[ModelUse(model=u.model, role=u.role, calls=u.calls, attempts=u.attempts, failed_calls=u.failed_calls,
                        input_tokens=u.input_tokens, output_tokens=u.output_tokens,
                        cached_input_tokens=u.cached_input_tokens, cache_write_tokens=u.cache_write_tokens,
                        cost_usd=u.cost_usd)
               for u in result.usage],
        budget=budget_use(result, settings), duration_s=round(result.duration_s, 3), parsed=parsed,
        trace=trace, html=html)
    return json.dumps(report.model_dump(mode="json"), indent=2, ensure_ascii=False, default=str)
