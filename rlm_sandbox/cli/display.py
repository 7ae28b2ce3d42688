"""How a command shows a run on stderr while it goes.

On a terminal: the rich live display (``view.live``), with the ``-v`` event log printed
above it. Not a terminal (a pipe, a CI log): no redraws at all, one plain line per event
with ``-v`` and only the closing summary without. ``--quiet``: nothing but the answer.
"""

from __future__ import annotations

from typing import Any

from ..events.printer import VerbosePrinter
from ..events.stream import Listener


class RunDisplay:
    """Chooses and runs the display for one run; use as a context manager around the run."""

    def __init__(self, *, verbose: bool, quiet: bool) -> None:
        from rich.console import Console

        self.quiet = quiet
        self.live: Any = None
        self.listener: Listener | None = None
        console = Console(stderr=True)
        if quiet:
            return
        if console.is_terminal and not console.is_dumb_terminal:
            from ..view.live import LiveDisplay

            self.live = self.listener = LiveDisplay(console, log=verbose)
        elif verbose:
            self.listener = VerbosePrinter()

    def __enter__(self) -> "RunDisplay":
        if self.live is not None:
            self.live.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.live is not None:
            self.live.__exit__(*exc_info)


def listeners(*given: Listener | None) -> Listener | None:
    """One listener calling each given one in order (None when there are none)."""
    chosen = [listener for listener in given if listener is not None]
    if len(chosen) <= 1:
        return chosen[0] if chosen else None

    def fan_out(event: Any) -> None:
        for listener in chosen:
            listener(event)

    return fan_out
