"""``rlm-sandbox trace``: look at a trace file (what ``run --trace`` writes).

``show`` draws the run as a tree in the terminal; ``html`` writes it as one self-contained
HTML file. Both read partial traces (an interrupted run, a file cut short) and say so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .common import fail

trace_app = typer.Typer(no_args_is_help=True, help="Look at a trace file (written by `run --trace`).")


def _read(path: str) -> Any:
    from ..events.jsonl import TraceFileError, read_events

    if Path(path).is_dir():
        raise fail(f"{path}: is a directory; give a trace file (`run --trace FILE` writes one)")
    try:
        return read_events(path)
    except TraceFileError as exc:
        raise fail(str(exc)) from None


@trace_app.command("show")
def trace_show(
    file: str = typer.Argument(..., metavar="FILE", help="A trace (JSONL) file."),
    depth: Optional[int] = typer.Option(None, "--depth", min=0, metavar="N",
                                        help="Draw child runs down to depth N in full (deeper ones in one line)."),
    iteration: Optional[int] = typer.Option(None, "--iteration", min=1, metavar="N",
                                            help="Only iteration N of the root run."),
    full: bool = typer.Option(False, "--full", help="Do not clip code, output, prompts or replies."),
) -> None:
    """Draw a run as a tree: iterations, replies with code highlighted, cell output,
    sub-calls and child runs under the cell that made them, tokens and cost per step."""
    from rich.console import Console

    from ..view.tree import TreeOptions, render_trace

    trace = _read(file)
    Console(highlight=False).print(render_trace(trace.events, trace.problems,
                                                options=TreeOptions(depth=depth, iteration=iteration, full=full)))


@trace_app.command("html")
def trace_html(
    file: str = typer.Argument(..., metavar="FILE", help="A trace (JSONL) file."),
    output: str = typer.Option(..., "--output", "-o", metavar="OUT.html", help="The HTML file to write."),
) -> None:
    """Write the run as ONE self-contained HTML file (no network, no script, no font):
    open it from a file:// URL or attach it to a CI run."""
    from ..view.html import write_html

    trace = _read(file)
    target = Path(output)
    if target.is_dir() or not target.parent.is_dir():
        raise fail(f"--output {output}: " + ("is a directory; give a file name" if target.is_dir() else
                                             f"the directory {str(target.parent)!r} does not exist"))
    try:
        write_html(trace.events, target, trace.problems)
    except OSError as exc:
        raise fail(f"--output {output}: cannot be written ({exc.strerror or exc})") from None
    typer.echo(str(target))
    if trace.partial:
        typer.secho("rlm-sandbox: the trace is partial; the HTML says so at the top", err=True,
                    fg=typer.colors.YELLOW)
