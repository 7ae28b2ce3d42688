"""The scripted oracle: a model named ``scripted/oracle`` that solves every built-in generator.

As the root model it writes the RLM code a good model would (chunk the context, fan out
with ``llm_query_batched`` or ``llm_query``, aggregate in code, ``FINAL_VAR``); as the
sub-model it answers those chunk questions by rule; asked directly (the ``--baseline
direct`` prompt) it answers from whatever text it was given. It is reached through litellm
like any model (a :class:`rlm_sandbox.models.scripted.ScriptedModel`), so the whole pipeline
runs end to end offline, for this project's own CI. Results it produces are labelled scripted.
"""

from __future__ import annotations

import threading
from typing import Any

from ..baseline import split_direct_prompt
from . import multihop, oolong, salary, sniah

__all__ = ["ORACLE_MODEL", "ensure_oracle", "is_scripted", "respond"]

ORACLE_MODEL = "scripted/oracle"
POLICIES = (salary, sniah, oolong, multihop)
_lock = threading.Lock()
_model: Any = None  # the process's one oracle ScriptedModel, made on first use


def is_scripted(model: str | None) -> bool:
    """True for the oracle and any other ``scripted/`` model (their results are labelled so)."""
    return bool(model) and str(model).startswith("scripted/")


def _query_of(first_user_message: str) -> str:
    text = first_user_message.split("Query: ", 1)[-1]
    return text.split("\n\nThe context is in the REPL", 1)[0]


def respond(messages: list[dict]) -> str:
    """The oracle's reply to one request (root turn, sub-call or direct question)."""
    first = str(messages[0].get("content", "")) if messages else ""
    if messages and messages[0].get("role") == "system":
        if len(messages) > 2:  # its code did not finish the task: say so, never guess
            last = " ".join(str(messages[-1].get("content", "")).split())[:300]
            return f"FINAL(the scripted oracle's code did not finish: {last})"
        query = _query_of(str(messages[1].get("content", "")) if len(messages) > 1 else "")
        for policy in POLICIES:
            code = policy.root_code(query)
            if code is not None:
                return f"```repl\n{code}\n```"
        return "FINAL(the scripted oracle does not know this task)"
    direct = split_direct_prompt(first)
    if direct is not None:
        text, query = direct
        for policy in POLICIES:
            answer = policy.direct(text, query)
            if answer is not None:
                return answer
        return "the scripted oracle does not know this task"
    for policy in POLICIES:
        answer = policy.sub_answer(first)
        if answer is not None:
            return answer
    return "UNKNOWN (the scripted oracle does not know this sub-question)"


def ensure_oracle() -> Any:
    """Register ``scripted/oracle`` with litellm (once per process) and return its ScriptedModel."""
    global _model
    from ...models.scripted import ScriptedModel

    with _lock:
        if _model is None:
            _model = ScriptedModel(responder=respond, name="oracle")
        return _model
