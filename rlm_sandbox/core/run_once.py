"""The one entry that runs a query: every caller's root run goes through :func:`run_once`.

``RLM.run``/``arun`` and ``Session.ask``/``aask`` call it, and through ``RLM.arun`` so do
evaluation, ``rlm-sandbox serve``, the MCP server and the integrations. What a finished
run owes its caller is therefore written once, here, and is the same for all of them:

- the query is checked before anything starts;
- a replay that lacked a request fails the run (``status="error"``), even where the model's
  code caught the miss inside a cell and finished anyway: a replay that silently diverged
  from its recording is not a deterministic replay;
- the run's ``error`` is masked for secrets, also on the result an exception carries (a
  sandbox that could not start), since a provider's message may quote a key.

The loop itself (:class:`~rlm_sandbox.core.loop._Run`) stays private to ``core``: nothing
outside this module starts one at depth 0.
"""

from __future__ import annotations

import copy
from typing import Any

from ..errors import RLMSandboxError
from ..redaction import redact
from ..sandbox.base import Context, Sandbox
from .answer_schema import AnswerSchema
from .broker import BrokerSwitch
from .loop import RunOwner, _Run
from .result import RLMResult

__all__ = ["check_query", "run_once"]


def check_query(query: Any) -> None:
    """Refuse a query that is not a non-empty string, before a sandbox or a model is touched."""
    if not isinstance(query, str) or not query.strip():
        raise ValueError(f"query must be a non-empty string, not {_shown(query)}; pass the question as text")


def _shown(query: Any) -> str:
    return "an empty or blank string" if isinstance(query, str) else f"a {type(query).__name__}"


def _own_replay(owner: RunOwner) -> RunOwner:
    """``owner`` as this run sees it: a replaying client becomes the run's own view of it
    (``ReplayClient.for_run``), whose misses are this run's alone; other clients as they are."""
    for_run = getattr(owner.llm, "for_run", None)
    if for_run is None:
        return owner
    mine = copy.copy(owner)
    mine.llm = for_run()
    return mine


def _misses(owner: RunOwner) -> list[Any]:
    """The requests a replaying client could not answer so far (none for other clients)."""
    return list(getattr(owner.llm, "misses", ()))


async def run_once(owner: RunOwner, query: str, context: Context = None, *,
                   answer_schema: AnswerSchema | None = None, sandbox: Sandbox | None = None,
                   switch: BrokerSwitch | None = None, session_notes: str = "") -> RLMResult:
    """Run ``query`` about ``context`` once, as a root run of ``owner`` (an ``RLM``).

    ``answer_schema`` overrides the owner's. A session passes its open ``sandbox``, the
    ``switch`` its callbacks go through and the digest of earlier questions
    (``session_notes``); otherwise the run makes, starts and closes a sandbox of its own.
    Raises what the run raises (a sandbox that could not start, cancellation), with any
    result it carries masked.
    """
    check_query(query)
    owner = _own_replay(owner)
    before = _misses(owner)
    run = _Run(owner, query, context, answer_schema=answer_schema or owner.answer_schema, sandbox=sandbox,
               switch=switch, session_notes=session_notes)
    try:
        result = await run.execute()
    except RLMSandboxError as exc:  # e.g. the sandbox could not start: the result it carries is masked too
        if exc.result is not None:
            _mask(exc.result)
        raise
    missed = [miss for miss in _misses(owner) if miss not in before]
    if missed:  # the loop, or the model's code, may have caught it: the run fails all the same
        result.status, result.error = "error", str(missed[0])
    return _mask(result)


def _mask(result: RLMResult) -> RLMResult:
    if result.error:
        result.error = redact(result.error)
    return result
