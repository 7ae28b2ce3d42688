"""Noticing a model that makes no progress, so a run does not pay for ``max_iterations`` of nothing.

Two rules, each a setting (0 turns it off):

- ``stall_repeats`` (default 2): the same reply, with the same outcome (what the model was
  told back), this many times in a row. A model that repeats itself after seeing the same
  result will keep doing so. Cell names (``<cell-7>``) and offload names (``_result_3``)
  differ from one turn to the next, so they are ignored in the comparison.
- ``stall_idle_replies`` (default 3): this many replies in a row that ran no code and gave no
  FINAL (prose, or replies cut off before a block closed).

A run that trips one ends with status ``stalled``, after one answer-now call for its best
answer (labelled ``answer_now``, never a FINAL one).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_VARYING = re.compile(r"<cell-\d+>|\b_result_\d+\b")


@dataclass(frozen=True)
class Stall:
    rule: str  # "repeated_reply" or "idle_replies"
    count: int
    setting: str  # e.g. "stall_repeats=2"


class StallWatch:
    """Counts repeated and idle turns of one run."""

    def __init__(self, repeats: int, idle_replies: int) -> None:
        self.repeats_limit, self.idle_limit = repeats, idle_replies
        self._last: tuple[str, str] | None = None
        self.repeats = 0
        self.idle = 0

    def turn(self, reply: str, feedback: str, acted: bool) -> None:
        """One turn: the reply, what the model was told about it, and whether it ran code or gave a FINAL."""
        key = (reply.strip(), _VARYING.sub("#", feedback))
        self.repeats = self.repeats + 1 if key == self._last else 1
        self._last = key
        self.idle = 0 if acted else self.idle + 1

    def stalled(self) -> Stall | None:
        if self.repeats_limit and self.repeats >= self.repeats_limit:
            return Stall("repeated_reply", self.repeats, f"stall_repeats={self.repeats_limit}")
        if self.idle_limit and self.idle >= self.idle_limit:
            return Stall("idle_replies", self.idle, f"stall_idle_replies={self.idle_limit}")
        return None

    @staticmethod
    def explain(stall: Stall) -> str:
        """The result's ``error`` for a stalled run: the rule and the setting that changes it."""
        if stall.rule == "repeated_reply":
            what = f"the model sent the same reply {stall.count} times in a row, with the same outcome each time"
        else:
            what = f"the model's last {stall.count} replies ran no code and gave no FINAL"
        name = stall.setting.split("=")[0]
        return f"stalled: {what} ({stall.setting}; raise {name}, or set it to 0 to turn this rule off)"
