"""``trace html`` and ``run --html``: a run as ONE self-contained HTML file.

Everything is inside the file: styles (pygments with inline styles, a small style sheet),
an inline SVG chart, no script, no font, no image, nothing fetched. A Content-Security-
Policy of ``default-src 'none'`` makes sure of it even if a model's text held markup (every
text is escaped anyway, after its control characters are made visible with
:func:`rlm_sandbox.untrusted.visible`, so no ESC, BEL or NUL reaches the file raw). It opens from a
file:// URL or as a CI artifact.

Layout: a header (query, models, status, the answer and where it came from, totals,
duration), a chart of tokens and cost across iterations, a timeline of iterations (each a
link, marked for errors, retries and budget stops), then each iteration: the model's reply
with code highlighted, each cell's code and output (clipped, expandable), and under the cell
its sub-calls and child runs, collapsible (``<details>``: they open on click with no
script). Tokens and cost per iteration with running totals. A partial trace says so first.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ..fences import RUNNABLE_FENCES, split_fences
from ..events import types as ev
from ..untrusted import visible
from .marks import describe
from .outline import CellRun, Call, RunOutline, Turn, Usage, money, outline_runs, partial_note, tokens

#: Characters shown before "show all"; and the most kept in the file for one text (the
#: trace file holds the rest). Together they keep a 10,000-event trace small and quick.
SHOWN_CHARS, KEPT_CHARS = 1_500, 20_000

_STYLE = """
:root{--fg:#1f2328;--dim:#656d76;--line:#d0d7de;--bg:#fff;--panel:#f6f8fa;--ok:#1a7f37;--bad:#cf222e;--warn:#9a6700}
*{box-sizing:border-box}
body{margin:0;padding:24px 32px;font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);
background:var(--bg);max-width:1200px}
h1{font-size:20px;margin:0 0 8px}
h2{font-size:16px;margin:24px 0 8px}
pre,code,.mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
pre{white-space:pre-wrap;word-break:break-word;margin:4px 0;padding:8px;background:var(--panel);border-radius:6px}
.highlight pre{padding:8px;border-radius:6px}
dl.head{display:grid;grid-template-columns:max-content 1fr;gap:4px 16px;margin:8px 0}
dl.head dt{color:var(--dim)}
dl.head dd{margin:0}
.partial{background:#fff1e5;border:1px solid #d1242f;color:#82071e;padding:10px 14px;border-radius:6px;font-weight:600}
.status-completed{color:var(--ok);font-weight:600}
.status-error,.status-interrupted,.status-unfinished{color:var(--bad);font-weight:600}
.status-max_iterations,.status-budget_exhausted,.status-timeout{color:var(--warn);font-weight:600}
.notfinal{color:var(--warn);font-weight:600}
.timeline{display:flex;flex-wrap:wrap;gap:3px;margin:8px 0 16px}
.timeline a{display:inline-block;min-width:26px;padding:2px 5px;text-align:center;border:1px solid var(--line);
border-radius:4px;text-decoration:none;color:var(--fg);font-size:12px}
.timeline a.err{border-color:var(--bad);background:#ffebe9}
.timeline a.retry{border-color:var(--warn);background:#fff8c5}
.timeline a.budget{border-color:var(--warn);background:#ffd8b5}
section.turn{border:1px solid var(--line);border-radius:8px;margin:10px 0;padding:8px 12px}
section.turn>h3{font-size:14px;margin:2px 0 6px}
.meta{color:var(--dim);font-weight:normal;font-size:12.5px}
.cell{border-left:3px solid var(--line);margin:8px 0 8px 4px;padding:2px 0 2px 10px}
.cell.failed{border-left-color:var(--bad)}
details{margin:4px 0}
details>summary{cursor:pointer}
details.sub-call,details.child-run,details.tool{border:1px solid var(--line);border-radius:6px;padding:3px 8px;
background:#fbfcfd}
details.child-run{border-color:#8250df;background:#fbf8ff}
details[open]>summary{margin-bottom:4px}
.mark{margin:4px 0;padding:4px 8px;border-radius:6px;font-weight:600}
.mark.error,.mark.restart{background:#ffebe9;color:var(--bad)}
.mark.budget,.mark.retry,.mark.nudge,.mark.schema{background:#fff8c5;color:var(--warn)}
.mark.info{background:#ddf4ff;color:#0969da}
.bad{color:var(--bad)}
.warn{color:var(--warn)}
.ok{color:var(--ok)}
svg text{font:11px system-ui,sans-serif;fill:var(--dim)}
footer{margin-top:24px;color:var(--dim);font-size:12px}
"""


class _Highlighter:
    """Pygments with inline styles (no class names, so no style sheet to ship)."""

    def __init__(self) -> None:
        from pygments.formatters import HtmlFormatter
        from pygments.lexers import PythonLexer, TextLexer

        self._formatter = HtmlFormatter(noclasses=True, style="friendly", nobackground=False)
        self._python, self._text = PythonLexer(), TextLexer()

    def __call__(self, code: str, language: str = "python") -> str:
        from pygments import highlight

        lexer = self._python if language in RUNNABLE_FENCES or language == "python" else self._text
        return highlight(code, lexer, self._formatter)


def render_html(events: list[Any], problems: list[str] | None = None) -> str:
    """The whole HTML document for a trace's events."""
    from .. import __version__

    runs = outline_runs(events)
    page = _Page(_Highlighter())
    body = []
    for run in runs:
        body.append(page.run_page(run, problems or []))
    if not runs:
        body.append('<div class="partial">PARTIAL TRACE: the trace holds no events</div>')
    title = _e(_line(runs[0].start.query, 80)) if runs and runs[0].start else "trace"
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>rlm-sandbox run: {title}</title><style>{_STYLE}</style></head><body>"
            + "".join(body)
            + f"<footer>rlm-sandbox {html.escape(__version__)} · {len(events):,} events · one self-contained file"
              "</footer></body></html>\n")


def write_html(events: list[Any], path: str | Path, problems: list[str] | None = None) -> Path:
    path = Path(path)
    path.write_text(render_html(events, problems), encoding="utf-8")
    return path


class _Page:
    def __init__(self, highlight: _Highlighter) -> None:
        self.highlight = highlight

    # -- the root run: header, chart, timeline, turns ------------------------------------

    def run_page(self, run: RunOutline, problems: list[str]) -> str:
        out = []
        note = partial_note(run, problems)
        if note:
            out.append(f'<div class="partial" id="partial">{_e(note)}</div>')
        out.append(self.header(run))
        steps = [turn for turn in run.turns if turn.usage.tokens or turn.root.reply]
        if steps:
            out.append("<h2>Tokens and cost per iteration</h2>" + chart(run.turns))
        out.append("<h2>Timeline</h2>" + self.timeline(run))
        out.append(f'<main id="run-{_e(run.run_id)}">{self.run_body(run)}</main>')
        return "".join(out)

    def header(self, run: RunOutline) -> str:
        start, final = run.start, run.final
        rows = [("status", f'<span class="status-{_e(run.status)}">{_e(run.status)}</span>')]
        if start is not None:
            rows.append(("query", f"<pre>{_clipped(start.query)}</pre>"))
            rows.append(("models", f"root <code>{_e(start.model)}</code>, sub <code>{_e(start.sub_model)}</code>"))
            rows.append(("context", _e(start.context_type + (f", {start.context_length:,}"
                                                               if start.context_length is not None else ""))))
        if final is not None:
            source = _e(final.answer_from)
            if final.answer_from != "final":
                source += ' <span class="notfinal">(NOT a FINAL answer)</span>'
            rows.append(("answer", f"<pre>{_clipped(final.answer) or '(none)'}</pre>"))
            rows.append(("answer from", source))
            if final.error:
                rows.append(("error", f'<span class="bad">{_e(final.error)}</span>'))
        steps = sum(1 for turn in run.turns if turn.purpose == "step")
        sub_calls = sum(len(cell.calls) for r in run.walk() for turn in r.turns for cell in turn.cells.values())
        rows.append(("totals", _e(f"{steps} iterations · {tokens(run.usage)} · cost {money(run.usage.cost_usd)} · "
                                  f"{sub_calls} sub-calls · {len(run.children)} child runs")))
        rows.append(("duration", _e(f"{run.duration_s:.1f} s")))
        rows.append(("run", f"<code>{_e(run.run_id)}</code>"))
        items = "".join(f"<dt>{name}</dt><dd>{value}</dd>" for name, value in rows)
        return f'<h1>rlm-sandbox run</h1><dl class="head">{items}</dl>'

    def timeline(self, run: RunOutline) -> str:
        links = []
        for turn in run.turns:
            kinds = []
            if turn.errors:
                kinds.append("err")
            if turn.retries:
                kinds.append("retry")
            if any(isinstance(m, ev.BudgetExhausted) for m in turn.marks):
                kinds.append("budget")
            label = "now" if turn.purpose == "answer_now" else str(turn.iteration)
            title = f"{turn.label}: {tokens(turn.usage)}, {money(turn.usage.cost_usd)}"
            links.append(f'<a href="#{_anchor(run, turn)}" class="{" ".join(kinds)}" title="{_e(title)}">'
                         f"{label}</a>")
        return f'<nav class="timeline">{"".join(links) or "<span>no iterations</span>"}</nav>'

    def run_body(self, run: RunOutline) -> str:
        out = []
        for event in run.sandbox:
            if isinstance(event, ev.SandboxStart) and event.error:
                out.append(f'<div class="mark error">sandbox failed to start: {_e(event.error)}</div>')
            elif isinstance(event, ev.ImageBuild) and (event.done or event.step is None):
                out.append(f'<div class="meta">{_e(event.message)}</div>')
        out.extend(self.mark(mark) for mark in run.marks)
        out.extend(self.turn(run, turn) for turn in run.turns)
        if run.final is not None:
            final = run.final
            out.append(f'<div class="meta">final · <span class="status-{_e(final.status)}">{_e(final.status)}</span>'
                       f" · answer from {_e(final.answer_from)} · {final.duration_s:.1f} s</div>")
        elif run.interrupted is not None:
            out.append(f'<div class="mark error">interrupted after {run.interrupted.iterations} iteration(s): '
                       "no final answer</div>")
        else:
            out.append('<div class="mark error">the trace ends here, before the run finished</div>')
        return "".join(out)

    # -- one turn ----------------------------------------------------------------------

    def turn(self, run: RunOutline, turn: Turn) -> str:
        meta = f"{tokens(turn.usage)} · {money(turn.usage.cost_usd)} · total {tokens(turn.total)} · " \
               f"{money(turn.total.cost_usd)}"
        flags = []
        if turn.retries:
            flags.append(f'<span class="warn">{turn.retries} retr{"y" if turn.retries == 1 else "ies"}</span>')
        if turn.errors:
            flags.append(f'<span class="bad">{turn.errors} error{"s" * (turn.errors != 1)}</span>')
        out = [f'<section class="turn" id="{_anchor(run, turn)}"><h3>{_e(turn.label)} '
               f'<span class="meta">{_e(meta)}</span> {" ".join(flags)}</h3>']
        if turn.root.request is not None or turn.root.reply is not None:
            out.append(self.reply(turn.root))
        out.extend(self.cell(cell) for cell in turn.ordered_cells)
        out.extend(self.mark(mark) for mark in turn.marks)
        out.append("</section>")
        return "".join(out)

    def reply(self, call: Call) -> str:
        reply = call.reply
        summary = f"model reply · {self.call_meta(call)}"
        if reply is None:
            return f'<div class="mark error">{_e(summary)}</div>'
        body = []
        for language, text in split_fences(reply.text or ""):
            if language is None:
                body.append(f"<pre>{_clipped(text.strip(chr(10)))}</pre>")
            else:
                body.append(self.code(text, language))
        body.extend(self.retries(call))
        if reply.error:
            body.append(f'<div class="mark error">{_e(reply.error)}</div>')
        return f'<details class="reply" open><summary>{_e(summary)}</summary>{"".join(body)}</details>'

    def cell(self, cell: CellRun) -> str:
        event = cell.cell
        if event is None:
            head = f'<div class="mark error">cell {cell.index + 1}: still running when the trace ends</div>'
            out = [f'<div class="cell failed">{head}']
        else:
            status = '<span class="ok">ok</span>' if not event.error else f'<span class="bad">{_e(event.error)}</span>'
            flags = "".join(f' · <span class="warn">{name}</span>' for flag, name in
                            ((event.timed_out, "timed out"), (event.restarted, "sandbox restarted")) if flag)
            if event.called_final:
                flags += ' · <span class="ok">called FINAL</span>'
            out = [f'<div class="cell{" failed" if event.error else ""}"><div><b>cell {cell.index + 1}</b> · {status}'
                   f' · {event.duration_s:.2f} s{flags}</div>', self.code(event.code)]
            output = (event.stdout + (("\n" + event.stderr) if event.stderr else "")).rstrip("\n")
            if output.strip():
                more = f" (of {event.stdout_chars:,} chars)" if event.stdout_chars > len(event.stdout) else ""
                kept = f", kept in {', '.join(event.offloaded)}" if event.offloaded else ""
                out.append(f'<div class="meta">output{_e(more + kept)}</div>' + _expandable(output))
        for call in cell.calls:
            out.append(self.sub_call(call))
        for tool in cell.tools:
            result = _e(tool.error or "") if tool.outcome != "ok" else ""
            out.append(f'<details class="tool"><summary>tool {_e(tool.tool)} · {_e(tool.outcome)} · '
                       f'{tool.duration_s:.2f} s</summary><pre>args {_e(str(tool.args))} {_e(str(tool.kwargs))}'
                       f"</pre>{result}</details>")
        for child in cell.children:
            out.append(self.child(child))
        out.append("</div>")
        return "".join(out)

    def sub_call(self, call: Call) -> str:
        sub = call.sub_call
        function = sub.function if sub else "llm_query"
        where = f" [{sub.batch_index + 1}/{sub.batch_size}]" if sub and sub.batch_index is not None else ""
        failed = sub is not None and sub.outcome != "ok" or call.reply is None
        summary = (f"{function}{where} · {self.call_meta(call)}"
                   + (f" · {_line(call.prompt, 90)}" if call.prompt else ""))
        body = [f"<div class=\"meta\">prompt ({len(call.prompt):,} chars)</div>{_expandable(call.prompt)}"]
        if call.answered and call.reply is not None:  # answered says so; mypy needs it said here
            body.append(f'<div class="meta">answer</div>{_expandable(call.reply.text or "")}')
        elif sub is not None and sub.error:
            body.append(f'<div class="mark error">{_e(sub.error)}</div>')
        body.extend(self.retries(call))
        css = ' bad' if failed else ''
        return (f'<details class="sub-call"><summary class="{css.strip()}">{_e(summary)}</summary>'
                f'<div class="body">{"".join(body)}</div></details>')

    def child(self, child: RunOutline) -> str:
        query = child.start.query if child.start else "?"
        summary = (f'child run {child.run_id} · <span class="status-{_e(child.status)}">{_e(child.status)}</span> · '
                   f"{_e(tokens(child.usage))} · {_e(money(child.usage.cost_usd))} · {child.duration_s:.1f} s · "
                   f"{_e(_line(query, 90))}")
        answer = child.final.answer if child.final else ""
        body = f'<div class="meta">answer</div><pre>{_clipped(answer) or "(none)"}</pre>' + self.run_body(child)
        return f'<details class="child-run"><summary>{summary}</summary><div class="body">{body}</div></details>'

    # -- pieces ------------------------------------------------------------------------

    def call_meta(self, call: Call) -> str:
        reply = call.reply
        if reply is None:
            sub = call.sub_call
            if sub is not None and sub.outcome == "refused":
                return f"refused: {_line(sub.error or '', 120)}"
            model = call.request.model if call.request else (sub.model if sub else "?")
            return f"{model} · no answer in the trace"
        usage = Usage()
        usage.add_reply(reply)
        return f"{reply.model} · {reply.outcome} · {tokens(usage)} · {money(usage.cost_usd)} · {reply.latency_s:.2f} s"

    def retries(self, call: Call) -> list[str]:
        causes = [(r.cause, r.wait_s, f"attempt {r.attempt} of {r.max_attempts}") for r in call.retries] or \
                 [(r.cause, r.wait_s, "") for r in (call.reply.retries if call.reply else [])]
        return [f'<div class="mark retry">retried after {_e(cause)} (waited {wait:.1f} s{", " if what else ""}'
                f"{_e(what)})</div>" for cause, wait, what in causes]

    def code(self, code: str, language: str = "python") -> str:
        code = visible(code)  # pygments escapes markup, not control characters
        if len(code) > KEPT_CHARS:
            code = code[:KEPT_CHARS] + f"\n# ... {len(code) - KEPT_CHARS:,} more characters in the trace file"
        return self.highlight(code, language)

    def mark(self, event: Any) -> str:
        mark = describe(event)
        return f'<div class="mark {mark.kind}">{_e(mark.text)}</div>'


def chart(turns: list[Turn], width: int = 900, height: int = 170) -> str:
    """An inline SVG: a bar per iteration (its tokens) and a line of the running cost
    (or of running tokens when a price is unknown)."""
    if not turns:
        return ""
    left, right, top, bottom = 56, 64, 10, 24
    plot_w, plot_h = width - left - right, height - top - bottom
    most = max(turn.usage.tokens for turn in turns) or 1
    costs = [turn.total.cost_usd for turn in turns]
    known = all(cost is not None for cost in costs)
    line_values = [float(c or 0.0) for c in costs] if known else [float(turn.total.tokens) for turn in turns]
    line_top = max(line_values) or 1.0
    step = plot_w / len(turns)
    bar = max(step * 0.7, 1.0)
    parts = [f'<svg width="{width}" height="{height}" role="img" '
             f'aria-label="tokens and cost per iteration">',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#d0d7de"/>']
    points = []
    for index, turn in enumerate(turns):
        x = left + index * step + (step - bar) / 2
        h = plot_h * turn.usage.tokens / most
        css = "#cf222e" if turn.errors else ("#bf8700" if turn.retries else "#54aeff")
        parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" fill="{css}">'
                     f"<title>{_e(turn.label)}: {turn.usage.tokens:,} tokens, {_e(money(turn.usage.cost_usd))}"
                     "</title></rect>")
        y = top + plot_h - plot_h * line_values[index] / line_top
        points.append(f"{left + index * step + step / 2:.1f},{y:.1f}")
    parts.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="#8250df" stroke-width="2"/>')
    line_label = money(line_top) if known else f"{int(line_top):,} tok"
    parts.append(f'<text x="{left - 6}" y="{top + 10}" text-anchor="end">{most:,}</text>'
                 f'<text x="{left - 6}" y="{top + plot_h}" text-anchor="end">0</text>'
                 f'<text x="{left + plot_w + 6}" y="{top + 10}">{_e(line_label)}</text>'
                 f'<text x="{left}" y="{height - 6}">bars: tokens per iteration · line: running '
                 f'{"cost" if known else "tokens (a price is unknown)"}</text>'
                 f'<text x="{left + plot_w}" y="{height - 6}" text-anchor="end">{len(turns)} turns</text></svg>')
    return "".join(parts)


def _anchor(run: RunOutline, turn: Turn) -> str:
    return f"r{run.run_id}-{'now' if turn.purpose == 'answer_now' else turn.iteration}"


def _e(text: str) -> str:
    """Text for HTML: control, bidi-override and XML-forbidden characters made visible first
    (a model's ESC or NUL must not reach the page raw), then escaped."""
    return html.escape(visible(str(text)), quote=True)


def _line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _clipped(text: str) -> str:
    kept = text if len(text) <= KEPT_CHARS else text[:KEPT_CHARS] + f"\n… {len(text) - KEPT_CHARS:,} more characters " \
                                                                     "in the trace file"
    return _e(kept)


def _expandable(text: str) -> str:
    """Text clipped to SHOWN_CHARS, with the rest (up to KEPT_CHARS) one click away."""
    if len(text) <= SHOWN_CHARS:
        return f"<pre>{_e(text)}</pre>"
    return (f"<pre>{_e(text[:SHOWN_CHARS])}…</pre><details class=\"more\"><summary>show all {len(text):,} characters"
            f"</summary><pre>{_clipped(text)}</pre></details>")
