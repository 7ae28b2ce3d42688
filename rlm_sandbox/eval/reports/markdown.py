"""``report.md``: the summary, the breakdowns, and one row per task.

For the salary suite the task table has exactly the original RLM project's columns (Records,
Context, Expected, RLM Answer, Direct Answer, RLM Cost, Direct Cost, RLM Time, Direct Time,
Winner); other suites get the same comparison keyed by task and length.
"""

from __future__ import annotations

import re
from urllib.parse import quote

from ...view.outline import cached_note
from ..results import TaskResult
from ..summary import Breakdown, SuiteSummary
from .text import shown

SCRIPTED_BANNER = ("> **SCRIPTED**: these results come from scripted models (the `scripted/oracle` policy or another "
                   "`scripted/` model), not from a real language model. They test the pipeline, not a model.")


def money(value: float | None) -> str:
    return "unknown" if value is None else f"${value:.4f}"


def token_count(tokens: int, cached_input_tokens: int) -> str:
    """A token count, saying how many input tokens were read from a prompt cache when any were."""
    return f"{tokens:,}{cached_note(cached_input_tokens)}"


#: CommonMark's punctuation that can start markup inside a table cell (emphasis, code, links,
#: HTML, entities, the cell separator); each is written backslash-escaped, so it shows as itself.
_MARKUP = re.compile(r"([\\`*_{}\[\]()<>#+!|~&])")


def cell(text: object, width: int = 60) -> str:
    """Untrusted text as one Markdown table cell: plain, control characters visible, newlines
    and runs of spaces as one space, clipped to ``width``, then every markup character escaped
    (so a ``|`` cannot add a column and ``<script>`` is text)."""
    value = " ".join(shown(text, keep="\n\t").split())
    return _MARKUP.sub(r"\\\1", shown(value, width))


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


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _status(r: TaskResult) -> str:
    status = r.status + (" (limit)" if r.limit_hit else "")
    return status + (f": {cell(r.error, 120)}" if r.error else "")


def _salary_table(results: list[TaskResult], baseline: bool) -> list[str]:
    heads = ["Records", "Context", "Expected", "RLM Answer", "Direct Answer", "RLM Cost", "Direct Cost", "RLM Time",
             "Direct Time", "Winner"]
    if not baseline:
        heads = [h for h in heads if not h.startswith("Direct") and h != "Winner"]
    lines = [_row(heads), "|" + "---|" * len(heads)]
    for r in results:
        b = r.baseline
        context = f"{r.context_chars:,} chars" if r.context_chars is not None else "?"
        row = {"Records": str(r.records or "?"), "Context": context, "Expected": cell(r.expected, 20),
               "RLM Answer": cell(r.answer, 30), "Direct Answer": cell(b.answer, 30) if b else "-",
               "RLM Cost": money(r.cost_usd), "Direct Cost": money(b.cost_usd) if b else "-",
               "RLM Time": f"{r.duration_s:.1f}s", "Direct Time": f"{b.duration_s:.1f}s" if b else "-",
               "Winner": winner(r) or "-"}
        lines.append(_row([row[h] for h in heads]))
    return lines


def _task_table(results: list[TaskResult], baseline: bool) -> list[str]:
    heads = ["Task", "Length", "Expected", "RLM Answer", "Score", "Status", "Direct Answer", "Direct Score",
             "RLM Cost", "Direct Cost", "RLM Time", "Direct Time", "Winner"]
    if not baseline:
        heads = [h for h in heads if not h.startswith("Direct") and h != "Winner"]
    lines = [_row(heads), "|" + "---|" * len(heads)]
    for r in results:
        b = r.baseline
        length = f"{r.length:,} tokens" if r.length else (f"{r.context_chars:,} chars" if r.context_chars else "?")
        link = f"[{cell(r.task_id, 30)}]({quote(r.trajectory or '', safe='/.-_~')})" if r.trajectory \
            else cell(r.task_id, 30)
        row = {"Task": f"{link} e{r.epoch}", "Length": length, "Expected": cell(r.expected, 24),
               "RLM Answer": cell(r.answer, 30), "Score": f"{r.score:.2f}", "Status": _status(r),
               "Direct Answer": cell(b.answer, 30) if b else "-", "Direct Score": f"{b.score:.2f}" if b else "-",
               "RLM Cost": money(r.cost_usd), "Direct Cost": money(b.cost_usd) if b else "-",
               "RLM Time": f"{r.duration_s:.1f}s", "Direct Time": f"{b.duration_s:.1f}s" if b else "-",
               "Winner": winner(r) or "-"}
        lines.append(_row([row[h] for h in heads]))
    return lines


def render_markdown(results: list[TaskResult], summary: SuiteSummary) -> str:
    s = summary
    lines = ["# rlm-sandbox eval report", ""]
    if s.scripted:
        lines += [SCRIPTED_BANNER, ""]
    lines += [f"Model {cell(s.model, 200)}, sub-model {cell(s.sub_model, 200)}; "
              f"{s.tasks} task(s), {s.epochs} epoch(s), {s.runs} run(s).",
              "", "| mean score | std. error | pass rate | passed | failed | errors | limits hit | tokens | cost | "
              "wall time |", "|---|---|---|---|---|---|---|---|---|---|",
              f"| {s.mean_score:.3f} | {s.stderr:.3f} | {s.pass_rate:.1%} | {s.passed} | {s.failed} | {s.errors} | "
              f"{s.limit_hits} | {token_count(s.input_tokens + s.output_tokens, s.cached_input_tokens)} | "
              f"{money(s.cost_usd)} | "
              f"{s.wall_time_s or 0:.1f}s |", ""]
    if s.baseline is not None:
        lines += [f"Direct baseline: mean score {s.baseline.mean_score:.3f}, pass rate {s.baseline.pass_rate:.1%}, "
                  f"cost {money(s.baseline.cost_usd)}.", ""]
    if s.exit_reasons:
        lines += ["**The suite fails:** " + cell("; ".join(s.exit_reasons), 2000) + ".", ""]
    baseline = s.baseline is not None
    lines += _breakdowns("By generator", s.by_generator, baseline)
    lines += _breakdowns("By length", s.by_length, baseline)
    salary = [r for r in results if r.source == "salary"]
    if salary:
        lines += ["## Salary (the original RLM table)", ""] + _salary_table(salary, baseline) + [""]
    lines += ["## Tasks", ""] + _task_table(results, baseline) + [""]
    return "\n".join(lines)
