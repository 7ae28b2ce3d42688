"""The suite's reports, all written from the results and the summary (never from the runs)."""

from __future__ import annotations

from pathlib import Path

from ..results import TaskResult
from ..summary import SuiteSummary
from .html import render_html
from .junit import render_junit
from .markdown import render_markdown

__all__ = ["render_html", "render_junit", "render_markdown", "write_reports"]


def write_reports(out: Path, results: list[TaskResult], summary: SuiteSummary, *, junit: Path | None = None,
                  html: Path | None = None) -> None:
    """summary.json, report.md, JUnit XML (``junit`` or DIR/junit.xml) and the HTML report
    (``html`` or DIR/report.html)."""
    (out / "summary.json").write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")
    (out / "report.md").write_text(render_markdown(results, summary), encoding="utf-8")
    (junit or out / "junit.xml").write_text(render_junit(results, summary), encoding="utf-8")
    (html or out / "report.html").write_text(render_html(results, summary), encoding="utf-8")
