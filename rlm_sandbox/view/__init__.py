"""Rendering a run's events for people: the live display, ``trace show`` and the HTML file.

Everything here works from the event stream (``rlm_sandbox.events``): never from the loop.
Besides the events it reads only leaf helpers: ``rlm_sandbox.fences`` (a reply's code
blocks, which the loop reads the same way) and ``rlm_sandbox.untrusted`` (model-written
text made safe to show). import-linter checks that ``view`` never imports ``core``.

The library never needs it to run: only the CLI and the HTTP server's trace page
(``serve/traces``) import ``view``, also a contract. ``outline`` groups a run's events into
turns and cells; ``live`` draws a run as it goes; ``tree`` (through ``visible_events``, which
cleans every string of an event for a terminal) and ``html`` render a finished (or cut) trace.
"""
