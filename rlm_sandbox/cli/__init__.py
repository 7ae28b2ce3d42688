"""The ``rlm-sandbox`` command: a thin layer over the library, one module per command group.

Exit codes: 0 the run completed; 1 error; 3 the run ended without completing
(max_iterations, budget_exhausted, timeout) but printed its best answer; 2 bad usage.
"""

from __future__ import annotations

import typer

from .demo import demo
from .doctor import doctor
from .gc import gc
from .image import image_app
from .run import run

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Run Recursive Language Models whose code runs in a locked-down Docker container.")
app.command()(run)
app.command()(demo)
app.add_typer(image_app, name="image")
app.command()(gc)
app.command()(doctor)

__all__ = ["app"]
