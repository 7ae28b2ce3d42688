"""Rendering a run's events for people: the live display, ``trace show`` and the HTML file.

Everything here reads the event stream (``rlm_sandbox.events``) and nothing else. The
library never needs it to run: only the CLI (and evaluation reports) import ``view``, a
contract checked by import-linter. ``outline`` groups a run's events into turns and cells;
``live`` draws a run as it goes; ``tree`` and ``html`` render a finished (or cut) trace.
"""
