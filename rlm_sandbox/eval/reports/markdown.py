"""``report.md``: the summary, the breakdowns, and one row per task.

For the salary suite the task table has exactly the original RLM project's columns (Records,
Context, Expected, RLM Answer, Direct Answer, RLM Cost, Direct Cost, RLM Time, Direct Time,
Winner); other suites get the same comparison keyed by task and length.
"""

from __future__ import annotations

from ..results import TaskResult
from ..summary import Breakdown, SuiteSummary

SCRIPTED_BANNER = ("> **SCRIPTED**: these results come from scripted models (the `scripted/oracle` policy or another "
                   "`scripted/` model), not from a real language model. They test the pipeline, not a model.")


def money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def cell(text: object, width: int = 60) -> str:
    value = " ".join(str(text).split()).replace("|", "\\|")
    return value if len(value) <= width else value[:width - 1] + "…"


def winner(result: TaskResult) -> str:
    if result.baseline is None:
        return ""
    if result.score > result.baseline.score:
        return "RLM"
    return "Direct" if result.baseline.score > result.score else "tie"


def _breakdowns(title: str, rows: dict[str, Breakdown], baseline: bool) -> list[str]:
    lines = [f"## {title}", "", "| | tasks | runs | mean score | pass rate | cost |"
             + (" direct mean score |" if baseline else ""), "|---|---|---|---|---|---|" + ("---|" if baseline else "")]
    for name, row in rows.items():
        lines.append(f"| {cell(name)} | {row.tasks} | {row.runs} | {row.mean_score:.3f} | {row.pass_rate:.1%} | "
                     f"{money(row.cost_usd)} |" + (f" {row.baseline_mean_score:.3f} |"
                                                   if baseline and row.baseline_mean_score is not None else
                                                   (" |" if baseline else "")))
    return lines + [""]


def _salary_table(results: list[TaskResult]) -> list[str]:
    lines = ["| Records | Context | Expected | RLM Answer | Direct Answer | RLM Cost | Direct Cost | RLM Time | "
             "Direct Time | Winner |", "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        b = r.baseline
        context = f"{r.context_chars:,} chars" if r.context_chars is not None else "?"
        lines.append(f"| {r.records or '?'} | {context} | {cell(r.expected, 20)} | {cell(r.answer, 30)} | "
                     f"{cell(b.answer, 30) if b else '-'} | {money(r.cost_usd)} | {money(b.cost_usd) if b else '-'} | "
                     f"{r.duration_s:.1f}s | {f'{b.duration_s:.1f}s' if b else '-'} | {winner(r) or '-'} |")
    return lines


def _task_table(results: list[TaskResult]) -> list[str]:
    lines = ["| Task | Length | Expected | RLM Answer | Score | Status | Direct Answer | Direct Score | RLM Cost | "
             "Direct Cost | RLM Time | Direct Time | Winner |", "|" + "---|" * 13]
    for r in results:
        b = r.baseline
        length = f"{r.length:,} tokens" if r.length else (f"{r.context_chars:,} chars" if r.context_chars else "?")
        status = r.status + (" (limit)" if r.limit_hit else "")
        lines.append(f"| [{cell(r.task_id, 30)}]({r.trajectory}) e{r.epoch} | {length} | {cell(r.expected, 24)} | "
                     f"{cell(r.answer, 30)} | {r.score:.2f} | {status} | {cell(b.answer, 30) if b else '-'} | "
                     f"{f'{b.score:.2f}' if b else '-'} | {money(r.cost_usd)} | {money(b.cost_usd) if b else '-'} | "
                     f"{r.duration_s:.1f}s | {f'{b.duration_s:.1f}s' if b else '-'} | {winner(r) or '-'} |")
    return lines


def render_markdown(results: list[TaskResult], summary: SuiteSummary) -> str:
    s = summary
    lines = ["# rlm-sandbox eval report", ""]
    if s.scripted:
        lines += [SCRIPTED_BANNER, ""]
    lines += [f"Model `{s.model}`, sub-model `{s.sub_model}`; {s.tasks} task(s), {s.epochs} epoch(s), {s.runs} run(s).",
              "", "| mean score | std. error | pass rate | passed | failed | errors | limits hit | tokens | cost | "
              "wall time |", "|---|---|---|---|---|---|---|---|---|---|",
              f"| {s.mean_score:.3f} | {s.stderr:.3f} | {s.pass_rate:.1%} | {s.passed} | {s.failed} | {s.errors} | "
              f"{s.limit_hits} | {s.input_tokens + s.output_tokens:,} | {money(s.cost_usd)} | "
              f"{s.wall_time_s or 0:.1f}s |", ""]
    if s.baseline is not None:
        lines += [f"Direct baseline: mean score {s.baseline.mean_score:.3f}, pass rate {s.baseline.pass_rate:.1%}, "
                  f"cost {money(s.baseline.cost_usd)}.", ""]
    if s.exit_reasons:
        lines += ["**The suite fails:** " + "; ".join(s.exit_reasons) + ".", ""]
    baseline = s.baseline is not None
    lines += _breakdowns("By generator", s.by_generator, baseline)
    lines += _breakdowns("By length", s.by_length, baseline)
    salary = [r for r in results if r.source == "salary"]
    if salary:
        lines += ["## Salary (the original RLM table)", ""] + _salary_table(salary) + [""]
    lines += ["## Tasks", ""] + _task_table(results) + [""]
    return "\n".join(lines)
