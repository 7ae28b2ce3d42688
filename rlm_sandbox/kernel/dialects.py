"""The other ways a cell finishes a task, besides ``FINAL``/``FINAL_VAR``.

Models are trained on other RLM harnesses and write their endings:

- ``SUBMIT(...)``, DSPy's RLM: ``SUBMIT(answer)`` or ``SUBMIT(field=value, ...)``. It ends the
  cell at once (as DSPy's own interpreters do), so nothing after it runs.
- ``answer["content"] = ...; answer["ready"] = True``, the original RLM's newer protocol:
  ``answer`` starts as ``{"content": "", "ready": False}`` in every namespace, and a cell that
  ends without an error with ``ready`` set finishes the task with ``content``. Reading it
  clears ``ready``, so the next question of a session does not end on the same flag.

Both become the cell's final answer, exactly like ``FINAL``; the host tells them apart by
the ``source`` field (``SUBMIT``, ``answer``).
"""

from __future__ import annotations

import json
from typing import Any

ANSWER_NAME = "answer"
#: The kernel's SUBMIT under a second name, so a typed ``SUBMIT`` defined in a cell (DSPy's
#: interpreter declares its output fields that way) can still end the cell through it.
SUBMIT_ALIAS = "__rlm_submit__"


class Submitted(BaseException):
    """Raised by SUBMIT to stop the cell; the kernel catches it and the cell succeeds.

    A BaseException, like DSPy's own, so ``except Exception`` in the cell does not swallow it.
    """


def new_answer_slot() -> dict[str, Any]:
    """The ``answer`` dict every fresh namespace holds."""
    return {"content": "", "ready": False}


def submitted_value(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """What ``SUBMIT(*args, **kwargs)`` submits: the one value given, else the fields by name
    (a dict), else the values in order (a list)."""
    if args and kwargs:
        raise TypeError("SUBMIT takes its values either in order or by name, not both: "
                        "SUBMIT(answer) or SUBMIT(answer=..., confidence=...)")
    if len(args) + len(kwargs) == 1:
        return args[0] if args else next(iter(kwargs.values()))
    if kwargs:
        return dict(kwargs)
    if args:
        return list(args)
    raise TypeError("SUBMIT needs the answer: SUBMIT(answer), or SUBMIT(field=value, ...)")


def as_json(value: Any) -> Any:
    """``value`` as plain JSON data; what JSON cannot hold becomes its repr (so a set or an
    object still crosses to the host, as text, instead of failing the whole reply)."""
    try:
        return json.loads(json.dumps(value, default=repr))
    except (ValueError, RecursionError):  # a circular structure, or one nested too deep
        return repr(value)


def ready_answer(namespace: dict[str, Any]) -> tuple[bool, Any]:
    """``(True, content)`` when ``answer["ready"]`` is set, clearing the flag; else ``(False, None)``.

    Only a plain dict and a plain bool or int flag count: the check runs outside the cell's
    time limit, so it must not call code the cell defined (a ``__bool__`` or ``get``).
    """
    slot = namespace.get(ANSWER_NAME)
    if type(slot) is not dict:
        return False, None
    ready = slot.get("ready")
    if type(ready) not in (bool, int) or not ready:
        return False, None
    slot["ready"] = False
    return True, slot.get("content", "")
