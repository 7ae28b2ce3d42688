"""The suite's summary: mean score with its standard error, pass rate, breakdowns, totals.

A task's score is the mean over its epochs; the suite's mean is the mean over tasks, and
its standard error the sample standard deviation of the task scores over sqrt(n). The pass
rate and the error share count every (task, epoch) run. Costs add up to None ("unknown")
as soon as one run's cost is unknown.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timezone
from statistics import mean, stdev
from typing import Any

from pydantic import BaseModel, Field

from .results import TaskResult

__all__ = ["Breakdown", "SuiteSummary", "summarise"]


class Breakdown(BaseModel):
    tasks: int
    runs: int
    mean_score: float
    pass_rate: float
    cost_usd: float | None
    baseline_mean_score: float | None = None


class SuiteSummary(BaseModel):
    """What ``run_suite`` returns and ``summary.json`` holds."""

    model: str
    sub_model: str
    scripted: bool = Field(description="scripted models answered: not a real model's result")
    tasks: int
    runs: int
    epochs: int
    mean_score: float
    stderr: float
    pass_rate: float
    passed: int
    failed: int
    errors: int
    error_share: float
    limit_hits: int
    input_tokens: int
    output_tokens: int
    cached_input_tokens: int = Field(0, description="part of input_tokens read from providers' prompt caches")
    cost_usd: float | None
    duration_s: float = Field(description="summed run time of the tasks (they overlap in wall time)")
    wall_time_s: float | None = None
    by_generator: dict[str, Breakdown]
    by_length: dict[str, Breakdown]
    baseline: Breakdown | None = None
    finished_at: str = Field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    exit_reasons: list[str] = Field(default_factory=list, description="why the suite fails the build, if it does")
    stopped: str | None = Field(None, description="the provider error no retry can mend (bad key, unknown model) "
                                "that stopped the suite before every task ran")
    not_run: int = Field(0, description="task runs left unrun when the suite stopped (run again to resume)")
    reports: dict[str, str] = Field(default_factory=dict, description="where each report was written")

    @property
    def ok(self) -> bool:
        return not self.exit_reasons


def _cost(results: list[TaskResult]) -> float | None:
    costs = [r.cost_usd for r in results]
    return None if any(c is None for c in costs) else round(sum(c or 0.0 for c in costs), 6)


def _task_scores(results: list[TaskResult], of: Any = lambda r: r.score) -> list[float]:
    by_task: dict[str, list[float]] = defaultdict(list)
    for result in results:
        by_task[result.task_id].append(of(result))
    return [mean(scores) for scores in by_task.values()]


def _breakdown(results: list[TaskResult]) -> Breakdown:
    with_baseline = [r for r in results if r.baseline is not None]
    return Breakdown(tasks=len({r.task_id for r in results}), runs=len(results),
                     mean_score=round(mean(_task_scores(results)), 6),
                     pass_rate=round(sum(r.passed for r in results) / len(results), 6), cost_usd=_cost(results),
                     baseline_mean_score=round(mean(_task_scores(with_baseline, lambda r: r.baseline.score)), 6)
                     if with_baseline else None)


def length_label(result: TaskResult) -> str:
    if result.length is not None:
        return f"{result.length:,} tokens"
    if result.records is not None:
        return f"{result.records:,} records"
    if result.context_chars is not None:
        return f"~{2 ** max(0, round(math.log2(max(1, result.context_chars // 4)))):,} tokens"
    return "unknown"


def summarise(results: list[TaskResult], *, model: str, sub_model: str, scripted: bool, epochs: int,
              wall_time_s: float | None = None) -> SuiteSummary:
    """The summary of ``results`` (at least one)."""
    scores = _task_scores(results)
    by_generator: dict[str, list[TaskResult]] = defaultdict(list)
    by_length: dict[str, list[TaskResult]] = defaultdict(list)
    for result in results:
        by_generator[result.source].append(result)
        by_length[length_label(result)].append(result)
    with_baseline = [r for r in results if r.baseline is not None]
    baseline = None
    if with_baseline:
        baselines = [r.baseline for r in with_baseline if r.baseline is not None]
        baseline = Breakdown(tasks=len({r.task_id for r in with_baseline}), runs=len(with_baseline),
                             mean_score=round(mean(_task_scores(with_baseline, lambda r: r.baseline.score)), 6),
                             pass_rate=round(sum(b.passed for b in baselines) / len(baselines), 6),
                             cost_usd=None if any(b.cost_usd is None for b in baselines)
                             else round(sum(b.cost_usd or 0.0 for b in baselines), 6))
    errors = sum(r.errored for r in results)
    return SuiteSummary(
        model=model, sub_model=sub_model, scripted=scripted, tasks=len(scores), runs=len(results), epochs=epochs,
        mean_score=round(mean(scores), 6), stderr=round(stdev(scores) / math.sqrt(len(scores)), 6) if len(scores) > 1
        else 0.0, pass_rate=round(sum(r.passed for r in results) / len(results), 6),
        passed=sum(r.passed for r in results), failed=sum(not r.passed for r in results), errors=errors,
        error_share=round(errors / len(results), 6), limit_hits=sum(r.limit_hit for r in results),
        input_tokens=sum(r.input_tokens for r in results), output_tokens=sum(r.output_tokens for r in results),
        cached_input_tokens=sum(r.cached_input_tokens for r in results),
        cost_usd=_cost(results), duration_s=round(sum(r.duration_s for r in results), 3), wall_time_s=wall_time_s,
        by_generator={name: _breakdown(group) for name, group in sorted(by_generator.items())},
        by_length={name: _breakdown(group) for name, group in
                   sorted(by_length.items(), key=lambda item: (item[1][0].length or item[1][0].records or 0))},
        baseline=baseline)
