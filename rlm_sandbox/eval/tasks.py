"""Tasks and task files: one JSON object per line, checked whole before anything runs.

A task has an ``id``, a ``query``, exactly one context source (``context`` inline,
``context_file`` relative to the task file, or ``generator`` with its ``name``, ``params`` and
``seed``), the ``expected`` answer (required: without it every run would score 0), a
``scorer`` (``{"name", "options"}``), an optional ``pass_threshold``
(default 1.0), ``budget`` (limits of its run: any of ``rlm_sandbox.Budget``'s fields) and
``metadata``. A bad line is reported with its line number and field, every problem at once.
Contexts are loaded (files read, generators rendered) only by :meth:`Task.load_context`,
when the task runs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .. import Budget
from .generators import GeneratorError, get_generator, render
from .scorers import ScorerError, check_scorer

__all__ = ["CONTEXT_SOURCES", "FieldProblem", "GeneratorSpec", "ScorerSpec", "Task", "TaskFileError", "generate_tasks",
           "load_tasks", "write_tasks"]


class TaskFileError(ValueError):
    """A task file (or a generator request) is not valid; ``problems`` lists each one."""

    def __init__(self, source: str, problems: list[str]) -> None:
        self.problems = problems
        shown = problems[:20] + ([f"... and {len(problems) - 20} more"] if len(problems) > 20 else [])
        super().__init__(f"{source}: {len(problems)} problem(s), nothing was run:\n  " + "\n  ".join(shown))


class FieldProblem(ValueError):
    """A problem of the task as a whole that one field names (``field``), so a task file's
    report can say ``line N, field 'F': ...`` for it too."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


CONTEXT_SOURCES = ("context", "context_file", "generator")


class ScorerSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    options: dict[str, Any] = Field(default_factory=dict)


class GeneratorSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int = 0


class Task(BaseModel):
    """One evaluation task (a line of a task file)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    query: str = Field(min_length=1)
    context: str | list | dict | None = None
    context_file: str | None = None
    generator: GeneratorSpec | None = None
    expected: Any = None
    scorer: ScorerSpec
    pass_threshold: float = Field(1.0, ge=0, le=1)
    budget: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)
    #: Where a context_file is looked for (the task file's folder); not part of the file.
    base_dir: str | None = Field(None, exclude=True)

    @field_validator("id")
    @classmethod
    def _plain_id(cls, value: str) -> str:
        if any(ch in value for ch in "/\\\n\r\t") or value in (".", ".."):
            raise ValueError("must not contain slashes, tabs or newlines (it names the task's files)")
        return value

    @field_validator("budget")
    @classmethod
    def _budget(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            Budget(**value)
        except TypeError as exc:
            raise ValueError(str(exc)) from None
        except ValidationError as exc:
            first = exc.errors()[0]
            raise ValueError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
        return value

    @model_validator(mode="after")
    def _complete(self) -> "Task":
        given = [name for name in CONTEXT_SOURCES if getattr(self, name) is not None]
        if len(given) > 1:
            raise FieldProblem(given[1], f"give the context once: {' and '.join(given)} were both given")
        if not given:
            raise FieldProblem("context", "no context: give exactly one of context (inline), context_file (a file "
                               "relative to the task file) or generator ({\"name\", \"params\", \"seed\"})")
        if self.expected is None:
            raise FieldProblem("expected", "missing: give the expected answer the scorer compares the answer with "
                               "(without it every run would score 0)")
        return self

    def load_context(self) -> Any:
        """The task's context, built now: a generator renders it, a file is read."""
        if self.generator is not None:
            return render(self.generator.name, self.generator.params, self.generator.seed)
        if self.context_file is not None:
            path = self.context_path()
            text = path.read_text(encoding="utf-8")
            return json.loads(text) if path.suffix == ".json" else text
        return self.context

    def context_path(self) -> Path:
        assert self.context_file is not None
        path = Path(self.context_file)
        return path if path.is_absolute() else Path(self.base_dir or ".") / path

    @property
    def source(self) -> str:
        """What the context is, for reports: the generator's name, ``file`` or ``inline``."""
        if self.generator is not None:
            return self.generator.name
        return "file" if self.context_file is not None else "inline"


def _check(task: Task) -> list[str]:
    """What is wrong with a task beyond its shape: scorer, generator, context file."""
    problems = []
    try:
        check_scorer(task.scorer.name, task.scorer.options)
    except ScorerError as exc:
        problems.append(f"field 'scorer': {exc}")
    if task.generator is not None:
        try:
            get_generator(task.generator.name).resolve(task.generator.params)
        except GeneratorError as exc:
            problems.append(f"field 'generator': {exc}")
    if task.context_file is not None and not task.context_path().is_file():
        problems.append(f"field 'context_file': {task.context_path()} does not exist")
    return problems


def load_tasks(path: str | Path) -> list[Task]:
    """The tasks of a JSONL file; raises TaskFileError listing every bad line and field."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise TaskFileError(str(path), ["the file does not exist"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TaskFileError(str(path), [f"cannot be read ({exc})"]) from None
    tasks: list[Task] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            raw = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: not JSON ({exc.msg} at column {exc.colno})")
            continue
        if not isinstance(raw, dict):
            problems.append(f"line {number}: a task is a JSON object, not {type(raw).__name__}")
            continue
        try:
            task = Task(**raw, base_dir=str(path.parent))
        except ValidationError as exc:
            for error in exc.errors():
                cause = (error.get("ctx") or {}).get("error")
                field = cause.field if isinstance(cause, FieldProblem) else ".".join(map(str, error["loc"]))
                message = str(cause) if isinstance(cause, FieldProblem) else \
                    str(error["msg"]).removeprefix("Value error, ")
                problems.append(f"line {number}, field '{field}': {message}" if field
                                else f"line {number}: {message}")
            continue
        problems += [f"line {number}, {problem}" for problem in _check(task)]
        if task.id in seen:
            problems.append(f"line {number}, field 'id': {task.id!r} is also the id on line {seen[task.id]}")
        seen.setdefault(task.id, number)
        tasks.append(task)
    if not tasks and not problems:
        problems.append("no tasks (the file is empty)")
    if problems:
        raise TaskFileError(str(path), problems)
    return tasks


def generate_tasks(name: str, n: int = 10, seed: int = 0, params: dict[str, Any] | None = None) -> list[Task]:
    """``n`` tasks from a built-in generator; their contexts are rendered only when they run."""
    generator = get_generator(name)
    tasks = []
    for index, (chosen, task_seed) in enumerate(generator.plan(n, seed, params or {})):
        sample = generator.sample(task_seed, chosen)
        tasks.append(Task(id=f"{name}-{index:04d}", query=sample.query, expected=sample.expected,
                          scorer=ScorerSpec(**sample.scorer), metadata={"generator": name, **sample.metadata},
                          generator=GeneratorSpec(name=name, params=chosen, seed=task_seed)))
    return tasks


def write_tasks(tasks: list[Task], path: str | Path) -> None:
    """Write tasks as a task file (one JSON line each)."""
    with open(path, "w", encoding="utf-8") as file:
        for task in tasks:
            file.write(task.model_dump_json(exclude_none=True, exclude={"base_dir"}) + "\n")
