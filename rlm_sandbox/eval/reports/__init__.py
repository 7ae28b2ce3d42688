"""The suite's reports, all written from the results and the summary (never from the runs)."""

from __future__ import annotations

import os
from pathlib import Path

from ..results import TaskResult
from ..summary import SuiteSummary
from .html import render_html
from .junit import render_junit
from .markdown import render_markdown
from .text import clip, plain, shown

__all__ = ["clip", "plain", "render_html", "render_junit", "render_markdown", "report_paths", "shown",
           "write_reports"]


def report_paths(out: Path, *, junit: Path | None = None, html: Path | None = None) -> dict[str, Path]:
    """Where each report goes: DIR/summary.json, DIR/report.md, ``junit`` or DIR/junit.xml,
    ``html`` or DIR/report.html."""
    return {"summary": out / "summary.json", "markdown": out / "report.md", "junit": junit or out / "junit.xml",
            "html": html or out / "report.html"}


def write_reports(out: Path, results: list[TaskResult], summary: SuiteSummary, *, junit: Path | None = None,
                  html: Path | None = None) -> dict[str, Path]:
    """Every report, at :func:`report_paths`; returns where each went. The HTML report links
    each task's trace relative to where the report itself is, so the links hold wherever
    ``--html`` puts it."""
    paths = report_paths(out, junit=junit, html=html)
    traces_from_html = Path(os.path.relpath(out.resolve(), paths["html"].resolve().parent))
    paths["summary"].write_text(summary.model_dump_json(indent=2) + "\n", encoding="utf-8")
    paths["markdown"].write_text(render_markdown(results, summary), encoding="utf-8")
    paths["junit"].write_text(render_junit(results, summary), encoding="utf-8")
    paths["html"].write_text(render_html(results, summary, traces=traces_from_html), encoding="utf-8")
    return paths
