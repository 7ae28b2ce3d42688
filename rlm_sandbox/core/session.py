"""Sessions: one sandbox, and its variables, kept across several questions.

Each question is its own run with its own budget, but the REPL persists, so a later
question can use what an earlier one computed. The conversation does not: each
question starts from the system prompt plus a compact digest of earlier questions and
answers, so the prompt stays bounded however long the session lasts.
"""

from __future__ import annotations

import asyncio

from ..kernel.capture import clip_middle
from ..sandbox.base import Context, Sandbox
from ..sandbox.host import Host
from .answer_schema import AnswerSchema
from .broker import CELL_EXCEPTIONS, BrokerSwitch, callback_docs
from .loop import RunOwner, prepare
from .result import RLMResult
from .run_once import run_once
from .sync_bridge import run_sync

#: Earlier turns shown to the model, and how much of each answer.
DIGEST_TURNS = 8
DIGEST_ANSWER_CHARS = 600


class Session:
    """``with rlm.session(context) as s: s.ask(q1); s.ask(q2)`` (or ``async with`` and ``aask``)."""

    def __init__(self, rlm: RunOwner, context: Context = None) -> None:
        self.rlm = rlm
        self.context = context
        self.turns: list[tuple[str, str]] = []
        self._switch = BrokerSwitch()
        self._sandbox: Sandbox | None = None

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> "Session":
        if self._sandbox is None:
            prepare(self.rlm)  # an unenforceable budget is refused before the container starts
            callbacks = self._switch.callbacks(callback_docs(self.rlm.tools))
            sandbox = self.rlm.sandbox_factory(self.rlm.settings.sandbox_spec(), self.context,
                                               Host(callbacks, CELL_EXCEPTIONS))
            sandbox.start()
            self._sandbox = sandbox
        return self

    def close(self) -> None:
        if self._sandbox is not None:
            self._sandbox.close()
            self._sandbox = None

    def __enter__(self) -> "Session":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    async def __aenter__(self) -> "Session":
        await asyncio.get_running_loop().run_in_executor(None, self.start)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.close)

    # -- questions --------------------------------------------------------------------

    def ask(self, query: str, *, answer_schema: AnswerSchema | None = None) -> RLMResult:
        """Answer ``query`` with the session's sandbox and what earlier questions left in it."""
        return run_sync(self.aask(query, answer_schema=answer_schema))

    async def aask(self, query: str, *, answer_schema: AnswerSchema | None = None) -> RLMResult:
        """The async twin of :meth:`ask`: one run in the session's sandbox, through the one run
        entry, so it ends as ``RLM.arun`` does (a replay miss fails it; its error is masked)."""
        if self._sandbox is None:
            raise RuntimeError("the session is not open; use `with rlm.session(context) as s:`")
        result = await run_once(self.rlm, query, self.context, answer_schema=answer_schema, sandbox=self._sandbox,
                                switch=self._switch, session_notes=self.digest())
        self.turns.append((query, result.answer))
        return result

    def digest(self) -> str:
        """Earlier questions and answers, compact, for the next question's first message."""
        if not self.turns:
            return ""
        shown = self.turns[-DIGEST_TURNS:]
        lines = [f"Earlier in this session ({len(self.turns)} question(s); the REPL still holds every variable "
                 "they created; call memory_status() to list them):"]
        if len(self.turns) > len(shown):
            lines.append(f"[{len(self.turns) - len(shown)} older question(s) not shown]")
        for number, (query, answer) in enumerate(shown, start=len(self.turns) - len(shown) + 1):
            lines.append(f"Q{number}: {clip_middle(query, 300)}\nA{number}: {clip_middle(answer, DIGEST_ANSWER_CHARS)}")
        return "\n".join(lines) + "\n\n"


__all__ = ["Session"]
