"""``SuiteConfig``: one validated description of an evaluation suite, for the CLI and Python alike.

``rlm-sandbox eval run`` had 30 flags and ``run_suite`` 26 keywords saying the same things twice,
each side checking some of them. Now the CLI maps its flags onto this model and Python builds it
directly; both hand it to :func:`~rlm_sandbox.eval.runner.run_suite`, so a value is checked once,
here, before anything runs or any directory is made. Each field has the flag that sets it
(:func:`flag`), and a bad value is one :class:`EvalError` naming both: the flag (what a CLI user
typed) and the field (what a Python user wrote).

What is not data stays out: a custom backend object and a progress reporter are keyword
arguments of ``run_suite``; the settings of each task's run (a budget, ``api_base``) are
``options``, checked by ``Settings`` when the suite starts (they are read over the environment).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails

from .tasks import FieldProblem

__all__ = ["EvalError", "SuiteConfig", "flag", "parse_limit"]

#: Fields whose flag is not ``--`` and the field's name with dashes.
_FLAGS = {"task_ids": "--task-id", "params": "--param", "labels": "--label", "options": "--set",
          "progress": "--quiet"}
#: Fields whose value is never quoted in an error (the runs' settings may hold an API key).
_HIDDEN = frozenset({"options"})


class EvalError(ValueError):
    """The suite cannot run as asked (its inputs, options or output directory)."""


def flag(field: str) -> str:
    """The ``rlm-sandbox eval run`` flag that sets ``field`` of :class:`SuiteConfig`."""
    return _FLAGS.get(field, "--" + field.replace("_", "-"))


def parse_limit(limit: int | str) -> slice:
    """``--limit``: N (the first N tasks) or "A-B" (tasks A to B, counted from 1), as a slice."""
    text = str(limit).strip()
    try:
        if "-" in text:
            first, last = (int(part) for part in text.split("-", 1))
            if not 1 <= first <= last:
                raise ValueError
            return slice(first - 1, last)
        count = int(text)
        if count < 1:
            raise ValueError
        return slice(0, count)
    except ValueError:
        raise EvalError(f"--limit {limit}: give a count N (>= 1) or a range A-B (1 <= A <= B)") from None


class SuiteConfig(BaseModel):
    """How to run a suite: the models, where results go, which tasks, how many at once, when the
    build fails. Frozen: one suite, one configuration. Paths are kept as given (a str or a Path).

    Defaults are written ``Field(default=...)``, not positionally: type checkers read the
    signature from the fields (``dataclass_transform``) and know a default only by that name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str = Field(min_length=1, description="root model (scripted/oracle: the scripted oracle)")
    out: Path | str = Field(description="output directory; results already there are resumed")
    sub_model: str | None = Field(default=None, description="model for llm_query (default: model)")
    n: int = Field(default=10, ge=1, description="tasks per generator named")
    seed: int = Field(default=0, description="seed of the generated tasks")
    params: dict[str, Any] = Field(default_factory=dict, description="generator parameters")
    limit: int | str | None = Field(default=None, description="the first N tasks, or tasks A-B (from 1)")
    task_ids: list[str] | None = Field(default=None, description="only these tasks")
    epochs: int = Field(default=1, ge=1, description="runs per task")
    concurrency: int | None = Field(default=None, ge=1, description="tasks at once (default 4; on Ray every slot)")
    max_connections: int | None = Field(default=None, ge=1,
                                        description="sub-calls in flight at once across all tasks")
    retry_on_error: int = Field(default=0, ge=0, description="reruns of a task that ended in error")
    record: Path | str | None = Field(default=None,
                                      description="record the model traffic, one cassette per task, here")
    replay: Path | str | None = Field(default=None, description="answer every model call from the cassettes here")
    baseline: str | None = Field(default=None, description="'direct': also ask the model with the whole context")
    baseline_model: str | None = Field(default=None, description="model of the direct baseline (default: model)")
    force: bool = Field(default=False, description="rerun tasks whose results are already in out")
    min_score: float | None = Field(default=None, description="fail below this mean score (0-1)")
    fail_on_error: bool | float | None = Field(default=None, description="errors tolerated: None/True none, "
                                               "False any, a share from 0 to 1, or a count above 1")
    junit: Path | str | None = Field(default=None, description="JUnit XML here (default out/junit.xml)")
    html: Path | str | None = Field(default=None, description="HTML report here (default out/report.html)")
    options: dict[str, Any] = Field(default_factory=dict, description="settings of every task's run")
    labels: dict[str, str] = Field(default_factory=dict, description="extra labels on the containers")
    progress: bool = Field(default=True, description="a progress line per task on stderr")
    ray: str | None = Field(default=None, description="run on a Ray cluster: 'auto' or the head's address")

    if not TYPE_CHECKING:  # a type checker keeps the fields' own signature; at run time, one EvalError
        def __init__(self, **values: Any) -> None:
            try:
                super().__init__(**values)
            except ValidationError as exc:
                raise EvalError("; ".join(_describe(error) for error in exc.errors())) from None

    @field_validator("limit")
    @classmethod
    def _limit(cls, value: int | str | None) -> int | str | None:
        if value is not None:
            parse_limit(value)  # raises EvalError, a ValueError: pydantic keeps it as the cause
        return value

    @field_validator("baseline")
    @classmethod
    def _baseline(cls, value: str | None) -> str | None:
        if value not in (None, "direct"):
            raise FieldProblem("baseline", f"--baseline {value}: the only baseline is 'direct'")
        return value

    @field_validator("min_score", mode="before")
    @classmethod
    def _min_score(cls, value: Any) -> Any:
        """Before pydantic's conversion, so the message quotes the value as given (2, not 2.0)."""
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))
                                  or not 0 <= value <= 1):
            raise FieldProblem("min_score", f"--min-score {value}: give a mean score from 0 to 1")
        return value

    @field_validator("fail_on_error", mode="before")
    @classmethod
    def _fail_on_error(cls, value: Any) -> Any:
        if value is None or isinstance(value, bool):
            return value
        if not isinstance(value, (int, float)) or value < 0 or (value > 1 and float(value) != int(value)):
            raise FieldProblem("fail_on_error", f"--fail-on-error {value}: give a share of the runs from 0 to 1 "
                               "(0.1: up to 10% may end in error) or a whole count above 1 (5: up to 5 runs may)")
        return value

    @model_validator(mode="after")
    def _one_tape(self) -> "SuiteConfig":
        if self.record is not None and self.replay is not None:
            raise FieldProblem("replay", "give --record or --replay, not both")
        return self


def _describe(error: ErrorDetails) -> str:
    """One problem as ``FLAG VALUE: what is wrong (SuiteConfig.FIELD)``."""
    cause = (error.get("ctx") or {}).get("error")
    loc = error["loc"]
    field = cause.field if isinstance(cause, FieldProblem) else str(loc[0]) if loc else ""
    path = ".".join(map(str, loc)) if len(loc) > 1 else field  # labels.KEY: which entry of a dict
    where = f" (SuiteConfig.{path})" if path else ""
    if isinstance(cause, (FieldProblem, EvalError)):  # our own message already names the flag and the value
        return f"{cause}{where}"
    if error["type"] == "extra_forbidden":
        return f"SuiteConfig has no field {field!r}; its fields: {', '.join(SuiteConfig.model_fields)}"
    if error["type"] == "missing":
        return f"{flag(field)} is required{where}"
    shown = "" if field in _HIDDEN else f" {error['input']}"
    return f"{flag(field)}{shown}: {error['msg']}{where}"
