"""``report.html``: one self-contained file (inline CSS and SVG, no script, no fetch): the
summary, a chart of mean score and cost by context length, and every task with a link to
its trace. It opens from disk or a CI artifact store with no network request.

Every text a model or a task file wrote is made visible and clipped (:func:`.text.shown`),
then HTML-escaped; a Content-Security-Policy of ``default-src 'none'`` keeps the page inert
even if some markup slipped through. Trace links are relative to where the report is.
"""

from __future__ import annotations

from html import escape as _escape
from pathlib import Path, PurePosixPath
from urllib.parse import quote

from ..results import TaskResult
from ..summary import SuiteSummary
from .markdown import money, token_count, winner
from .text import shown

CSP = "default-src 'none'; style-src 'unsafe-inline'"


def escape(value: object, limit: int | None = None) -> str:
    """Untrusted text for HTML: plain, visible, clipped, then escaped (quotes too)."""
    return _escape(shown(value, limit), quote=True)


def _trace_link(result: TaskResult, traces: Path) -> str:
    if not result.trajectory:
        return ""
    return quote(str(PurePosixPath(traces.as_posix()) / result.trajectory), safe="/.-_~")

CSS = """body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;margin:1em 0}
td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f3f3f3}
.pass{color:#176f2c}.fail{color:#b3261e}.banner{background:#fff4ce;border:1px solid #e0b400;padding:8px}
.num{text-align:right}svg text{font:12px system-ui,sans-serif}"""


def _chart(summary: SuiteSummary) -> str:
    """Bars: mean score per length; dots and labels: cost per length (scaled to the largest)."""
    groups = list(summary.by_length.items())
    width, height, left, bottom = max(320, 110 * len(groups) + 80), 220, 50, 40
    top_cost = max((g.cost_usd or 0.0 for _, g in groups), default=0.0) or 1.0
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             'aria-label="mean score and cost by context length">',
             f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#888"/>',
             f'<text x="4" y="14">score</text><text x="{width - 60}" y="14" fill="#b35900">cost</text>']
    plot = height - bottom - 20
    for index, (name, group) in enumerate(groups):
        x = left + 20 + index * 110
        bar = plot * group.mean_score
        parts.append(f'<rect x="{x}" y="{height - bottom - bar:.1f}" width="40" height="{bar:.1f}" fill="#3b78c4">'
                     f'<title>{escape(name)}: mean score {group.mean_score:.3f}</title></rect>')
        parts.append(f'<text x="{x}" y="{height - bottom - bar - 4:.1f}">{group.mean_score:.2f}</text>')
        if group.cost_usd is not None:
            y = height - bottom - plot * group.cost_usd / top_cost
            parts.append(f'<circle cx="{x + 60}" cy="{y:.1f}" r="4" fill="#b35900"><title>{escape(name)}: '
                         f'{money(group.cost_usd)}</title></circle>')
        parts.append(f'<text x="{x}" y="{height - bottom + 16}">{escape(name)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _row(r: TaskResult, traces: Path, baseline: bool) -> str:
    b = r.baseline
    verdict = '<span class="pass">pass</span>' if r.passed else '<span class="fail">fail</span>'
    error = f'<div class="fail">{escape(r.error, 300)}</div>' if r.error else ""
    direct = (f"<td>{escape(b.answer, 200) if b else ''}</td><td class=num>{f'{b.score:.2f}' if b else ''}</td>"
              f"<td>{escape(winner(r))}</td>") if baseline else ""
    return (f"<tr><td><a href=\"{escape(_trace_link(r, traces))}\">{escape(r.task_id)}</a> e{r.epoch}</td>"
            f"<td>{escape(r.source)}</td><td class=num>{f'{r.length:,}' if r.length else ''}</td>"
            f"<td>{escape(r.expected, 200)}</td><td>{escape(r.answer, 300)}</td>"
            f"<td class=num>{r.score:.2f}</td><td>{verdict}</td><td>{escape(r.status)}"
            f"{' (limit)' if r.limit_hit else ''}{error}</td><td class=num>{money(r.cost_usd)}</td>"
            f"<td class=num>{r.duration_s:.1f}s</td>{direct}</tr>")


def render_html(results: list[TaskResult], summary: SuiteSummary, *, traces: Path = Path(".")) -> str:
    """The report; ``traces`` is the output directory as seen from where the report is written."""
    s = summary
    baseline = any(r.baseline is not None for r in results)
    rows = "".join(_row(r, traces, baseline) for r in results)
    banner = ('<p class="banner"><b>SCRIPTED</b>: answered by scripted models (<code>scripted/oracle</code>), '
              "not a real language model.</p>" if s.scripted else "")
    failing = (f"<p class=fail><b>The suite fails:</b> {escape('; '.join(s.exit_reasons))}.</p>"
               if s.exit_reasons else "")
    direct_heads = "<th>direct answer</th><th>direct score</th><th>winner</th>" if baseline else ""
    tokens = token_count(s.input_tokens + s.output_tokens, s.cached_input_tokens)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{CSP}">
<title>rlm-sandbox eval: {escape(s.model)}</title>
<style>{CSS}</style></head><body>
<h1>rlm-sandbox eval report</h1>{banner}{failing}
<p>Model <code>{escape(s.model)}</code>, sub-model <code>{escape(s.sub_model)}</code>: {s.tasks} task(s),
{s.epochs} epoch(s), {s.runs} run(s).</p>
<table id="summary"><tr><th>mean score</th><th>std. error</th><th>pass rate</th><th>errors</th><th>limits hit</th>
<th>tokens</th><th>cost</th><th>wall time</th></tr><tr><td class=num>{s.mean_score:.3f}</td>
<td class=num>{s.stderr:.3f}</td><td class=num>{s.pass_rate:.1%}</td><td class=num>{s.errors}</td>
<td class=num>{s.limit_hits}</td><td class=num>{tokens}</td>
<td class=num>{money(s.cost_usd)}</td><td class=num>{s.wall_time_s or 0:.1f}s</td></tr></table>
<h2>Score and cost by context length</h2>{_chart(s)}
<h2>Tasks</h2>
<table id="tasks"><tr><th>task (trace)</th><th>generator</th><th>tokens</th><th>expected</th><th>answer</th>
<th>score</th><th></th><th>status</th><th>cost</th><th>time</th>{direct_heads}</tr>
{rows}</table></body></html>
"""
