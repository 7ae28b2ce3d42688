"""What each mark on a turn says, written once for both viewers.

A mark is an event drawn as one line on the turn it happened in (a budget stop, a restart,
a nudge, a fold of the history, a refused FINAL, ...). ``trace show`` draws it as rich
``Text`` in the mark's style, the HTML file as a ``div`` of the mark's class; both escape
the text themselves (a sandbox restart's reason may quote what the model's code printed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..events import types as ev

#: How loud a mark is: a CSS class of the HTML file, a rich style of ``trace show``.
MarkKind = Literal["budget", "restart", "nudge", "schema", "info"]

#: Events shown as marks on the turn they happened in (or on the run, before any turn).
MARK_KINDS: tuple[type[ev.EventBase], ...] = (
    ev.Nudge, ev.SchemaRejected, ev.BudgetExhausted, ev.DepthFallback, ev.SandboxRestart,
    ev.Compaction, ev.ReplyCut, ev.FinalRejected, ev.Stalled)

_FINAL_REJECTED = {"code_failed": "code in the same reply failed", "no_such_variable": "the variable does not exist",
                   "cut_off": "it was cut off at the token limit", "too_long": "it was longer than an answer may be"}


@dataclass(frozen=True)
class Mark:
    text: str
    kind: MarkKind


def describe(event: ev.EventBase) -> Mark:
    """The line a viewer draws for a mark event."""
    if isinstance(event, ev.BudgetExhausted):
        return Mark(f"budget exhausted: {event.limit} ({event.used:g} of {event.allowed:g}); the run ends", "budget")
    if isinstance(event, ev.SandboxRestart):
        return Mark(f"sandbox restarted: {event.reason}", "restart")
    if isinstance(event, ev.Nudge):
        return Mark(f"no code and no FINAL: the model was nudged ({event.count})", "nudge")
    if isinstance(event, ev.SchemaRejected):
        return Mark(f"answer rejected by the schema: {event.problem}", "schema")
    if isinstance(event, ev.DepthFallback):
        return Mark(f"rlm_query at max_depth {event.max_depth} became llm_query", "nudge")
    if isinstance(event, ev.Compaction):
        return Mark(_compaction(event), "info")
    if isinstance(event, ev.ReplyCut):
        why = "cut off at max_tokens" + (f"={event.max_tokens}" if event.max_tokens else "") \
            if event.finish_reason == "length" else "left a block open"
        unclosed = "; its last block was not closed, so it did not run" if event.unclosed_block else ""
        return Mark(f"the reply was {why}{unclosed} ({event.blocks_run} block(s) ran)", "nudge")
    if isinstance(event, ev.FinalRejected):
        return Mark(f"FINAL not accepted: {_FINAL_REJECTED.get(event.reason, event.reason)}", "nudge")
    if isinstance(event, ev.Stalled):
        what = "the same reply repeated" if event.rule == "repeated_reply" else "replies ran no code"
        return Mark(f"stalled: {what} {event.count} times ({event.setting}); the model is asked to answer now",
                    "budget")
    return Mark(str(getattr(event, "event", type(event).__name__)), "info")


def _compaction(event: ev.Compaction) -> str:
    folded = _span(event.folded) or "no iterations"
    clipped = "; the latest iteration was clipped to fit" if event.clipped else ""
    why = "the provider refused it as too long" if event.reason == "overflow" else "it reached compact_at"
    return (f"history compacted ({why}): {folded} folded into a digest, {event.tokens_before:,} -> "
            f"{event.tokens_after:,} tokens of {event.limit:,} allowed (window {event.window:,}, "
            f"from {event.window_source}){clipped}")


def _span(iterations: list[int]) -> str:
    if not iterations:
        return ""
    if iterations == list(range(iterations[0], iterations[-1] + 1)) and len(iterations) > 1:
        return f"iterations {iterations[0]}-{iterations[-1]}"
    return ("iteration " if len(iterations) == 1 else "iterations ") + ", ".join(map(str, iterations))
