"""``rlm-sandbox trace``: look at a trace file (what ``run --trace`` writes).

``show`` draws the run as a tree in the terminal; ``html`` writes it as one self-contained
HTML file. Both read partial traces (an interrupted run, a file cut short) and say so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from .common import fail, prepare_output

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
    if iteration is not None:
        _check_iteration(trace.events, iteration)
    Console(highlight=False).print(render_trace(trace.events, trace.problems,
                                                options=TreeOptions(depth=depth, iteration=iteration, full=full)))


def _check_iteration(events: list[Any], iteration: int) -> None:
    """Fail (exit 2) when the root run has no iteration ``iteration``, naming those it has."""
    from ..view.outline import outline_runs

    held = sorted({turn.iteration for run in outline_runs(events) for turn in run.turns if turn.purpose == "step"})
    if iteration not in held:
        has = f"it has iteration{'s' * (len(held) != 1)} {_ranges(held)}" if held else "it has no iteration at all"
        raise fail(f"--iteration {iteration}: the trace has no iteration {iteration}; {has}")


def _ranges(numbers: list[int]) -> str:
    """[1, 2, 3, 5] -> '1-3, 5'."""
    parts: list[str] = []
    last = -2
    for number in numbers:
        if parts and number == last + 1:
            parts[-1] = f"{parts[-1].split('-')[0]}-{number}"
        else:
            parts.append(str(number))
        last = number
    return ", ".join(parts)


def _default_html(file: str) -> str:
    """run.jsonl -> run.html (run.html -> run.html.html: never the trace itself)."""
    path = Path(file)
    return str(path.with_suffix(".html") if path.suffix != ".html" else path.with_name(path.name + ".html"))


@trace_app.command("html")
def trace_html(
    file: str = typer.Argument(..., metavar="FILE", help="A trace (JSONL) file."),
    output: Optional[str] = typer.Option(None, "--output", "-o", metavar="OUT.html",
                                         help="The HTML file to write (default: FILE with .html for its suffix, "
                                              "next to it); its directory must exist."),
) -> None:
    """Write the run as ONE self-contained HTML file (no network, no script, no font):
    open it from a file:// URL or attach it to a CI run."""
    from ..view.html import write_html

    trace = _read(file)
    output = output or _default_html(file)
    target = Path(output)
    prepare_output(output, "--output")
    try:
        write_html(trace.events, target, trace.problems)
    except OSError as exc:
        raise fail(f"--output {output}: cannot be written ({exc.strerror or exc})") from None
    typer.echo(str(target))
    if trace.partial:
        typer.secho("rlm-sandbox: the trace is partial; the HTML says so at the top", err=True,
                    fg=typer.colors.YELLOW)
