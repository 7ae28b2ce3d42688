"""The ``rlm-sandbox`` command: a thin layer over the library, one module per command group.

Exit codes (also in ``--help``): 0 completed; 2 bad usage; 3 ended without completing
(the best answer is printed and stderr says where it came from); 4 model or provider
error; 5 sandbox error; 130 interrupted. Nothing printed ever holds a secret's value.
"""

from __future__ import annotations

import atexit
import os
import sys
import traceback
from typing import Any

import typer

from .common import EXIT_CODES_HELP, EXIT_INTERRUPTED, show_logs
from .demo import demo
from .doctor import doctor
from .eval import eval_app
from .gc import gc
from .image import image_app
from .mcp import mcp
from .run import run
from .serve import serve
from .settings import settings
from .trace import trace_app


class _App(typer.Typer):
    """Typer, with our log lines shown and an unexpected error's traceback masked for secrets."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        show_logs()
        try:
            return super().__call__(*args, **kwargs)
        except SystemExit as exc:
            if exc.code == EXIT_INTERRUPTED:
                _exit_interrupted()
            raise
        except Exception as exc:  # noqa: BLE001 - a bug: show it, but never a secret in it
            from ..redaction import redact

            sys.stderr.write(redact("".join(traceback.format_exception(exc))))
            sys.exit(1)


def _exit_interrupted() -> None:
    """End an interrupted command now. By the time a command exits 130 it has saved what it
    keeps (the trace ends with run_interrupted after the sandbox's close; finished eval tasks
    are in results.jsonl) and said so. The interpreter's own exit would then join every worker
    thread, and one still blocked in a call the interrupt could not cut short (a provider
    request, a callback) would hold the process forever after Ctrl-C. So the exit handlers run
    here (they remove any sandbox still live) and the process ends without that join."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be said there
            pass
    atexit._run_exitfuncs()
    os._exit(EXIT_INTERRUPTED)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"rlm-sandbox {__version__}")
        raise typer.Exit()


# rich_markup_mode=None: typer's rich help panel labels every flag with a value type
# (`--help <bool>`, `--json <bool>`) although flags take no value; its plain help does not.
app = _App(add_completion=False, no_args_is_help=True, rich_markup_mode=None, pretty_exceptions_enable=False,
           help="Run Recursive Language Models whose code runs in a locked-down Docker container.\n\n"
                + EXIT_CODES_HELP)


@app.callback()
def main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                      help="Print the version and exit.")) -> None:
    """Run Recursive Language Models whose code runs in a locked-down Docker container."""


app.command()(run)
app.command()(demo)
app.command()(settings)
app.add_typer(image_app, name="image")
app.add_typer(trace_app, name="trace")
app.command()(gc)
app.command()(doctor)
app.command()(serve)
app.add_typer(eval_app, name="eval")
app.command()(mcp)

__all__ = ["app"]
