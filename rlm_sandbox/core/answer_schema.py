"""Structured answers: the model is shown a JSON schema and its FINAL must match it.

Any type pydantic can validate works (a BaseModel subclass, ``list[int]``, a
TypedDict...). A failed validation goes back to the model with pydantic's error list,
so it can fix the answer; the result keeps the JSON text as ``answer`` and the
validated object as ``parsed``.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter, ValidationError

AnswerSchema = Any  # a type pydantic can validate


def schema_prompt(schema: AnswerSchema) -> str:
    return json.dumps(TypeAdapter(schema).json_schema(), indent=1)


def validate_answer(schema: AnswerSchema, text: str) -> tuple[Any, str | None]:
    """(validated object, None), or (None, a message telling the model what to fix)."""
    try:
        return TypeAdapter(schema).validate_json(text), None
    except ValidationError as exc:
        problems = "\n".join(f"- {'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}"
                             for e in exc.errors()[:20])
        return None, ("Your answer does not match the required schema, so it was not accepted:\n"
                      f"{problems}\nThe answer must be JSON for that schema (build a dict in a variable and use "
                      "FINAL_VAR('name')). Fix it and answer again.")
