"""What every built-in generator is: parameters, a plan of tasks, and two separate steps.

``sample(seed, params)`` draws the task's data and computes its query and expected answer
from that data; ``render(seed, params)`` draws the same data again (same seed, same draws)
and writes it out as the context text. The expected answer is never read back from the
text, and the text is only built when a task runs (``render``), so a suite of 10M-token
tasks costs nothing to list or to write to a task file. Standard library only; every random
draw comes from ``random.Random(seed)``, so a task is the same on every machine.
"""

from __future__ import annotations

import hashlib
import random
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

__all__ = ["CHARS_PER_TOKEN", "GeneratorError", "Generator", "Param", "Sample", "derive_seed"]

#: The length unit of ``tokens`` parameters: about four characters a token (RULER's and
#: OOLONG's lengths are in tokens; we cannot run every model's tokenizer offline).
CHARS_PER_TOKEN = 4


class GeneratorError(ValueError):
    """A generator name or parameter is wrong."""


@dataclass(frozen=True)
class Param:
    """One parameter: its type (int or str), default, help, and allowed values if limited."""

    kind: type
    default: Any
    help: str
    choices: tuple[Any, ...] = ()
    minimum: int | None = None

    def parse(self, name: str, value: Any) -> Any:
        """``value`` (a str from the command line, or a JSON value) as this parameter's type;
        a comma-separated str or a list gives a list (tasks cycle over it)."""
        if isinstance(value, str) and "," in value:
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            if not value:
                raise GeneratorError(f"parameter {name}: give at least one value")
            return [self.parse(name, item) for item in value]
        try:
            parsed = self.kind(value) if not isinstance(value, bool) else None
        except (TypeError, ValueError):
            parsed = None
        if parsed is None or (self.kind is int and isinstance(value, float) and value != int(value)):
            raise GeneratorError(f"parameter {name}={value!r}: not {'an integer' if self.kind is int else 'text'}")
        if self.choices and parsed not in self.choices:
            raise GeneratorError(f"parameter {name}={parsed!r}: use one of {', '.join(map(str, self.choices))}")
        if self.minimum is not None and parsed < self.minimum:
            raise GeneratorError(f"parameter {name}={parsed}: must be at least {self.minimum}")
        return parsed


@dataclass(frozen=True)
class Sample:
    """A task as its data defines it, before any text is written."""

    query: str
    expected: Any
    scorer: dict[str, Any]
    metadata: dict[str, Any] = field(default_factory=dict)


def derive_seed(base: int, *parts: Any) -> int:
    """A seed for one task, the same on every machine and Python (no ``hash()``)."""
    digest = hashlib.sha256(":".join(map(str, (base, *parts))).encode()).hexdigest()
    return int(digest[:12], 16)


class Generator(ABC):
    """A built-in task generator. Subclasses set ``name``, ``description``, ``params``."""

    name: ClassVar[str]
    description: ClassVar[str]
    params: ClassVar[dict[str, Param]]
    #: Question kinds a ``kind=any`` parameter cycles through, task by task (empty: no such parameter).
    kinds: ClassVar[tuple[str, ...]] = ()

    def resolve(self, given: dict[str, Any]) -> dict[str, Any]:
        """The parameters with defaults filled in and values parsed; unknown names refused."""
        unknown = sorted(set(given) - set(self.params))
        if unknown:
            raise GeneratorError(f"generator {self.name!r} has no parameter {', '.join(unknown)}; its parameters: "
                                 f"{', '.join(self.params)}")
        return {name: param.parse(name, given.get(name, param.default)) for name, param in self.params.items()}

    def plan(self, n: int, seed: int, given: dict[str, Any]) -> list[tuple[dict[str, Any], int]]:
        """``n`` tasks as (parameters, seed): list-valued parameters are cycled over, so
        ``tokens=8192,16384`` with ``n=4`` gives two tasks of each length, and so is
        ``kind=any`` over the generator's ``kinds``."""
        if n < 1:
            raise GeneratorError("give at least one task (--n 1 or more)")
        params = self.resolve(given)
        planned = []
        for index in range(n):
            chosen = {name: value[index % len(value)] if isinstance(value, list) else value
                      for name, value in params.items()}
            if self.kinds and chosen.get("kind") == "any":  # every kind of question in turn
                chosen["kind"] = self.kinds[index % len(self.kinds)]
            planned.append((chosen, derive_seed(seed, self.name, index)))
        return planned

    def rng(self, seed: int) -> random.Random:
        return random.Random(seed)

    @abstractmethod
    def sample(self, seed: int, params: dict[str, Any]) -> Sample:
        """The task's query, expected answer, scorer and metadata, from its data alone."""

    @abstractmethod
    def render(self, seed: int, params: dict[str, Any]) -> str:
        """The context text of the same task (drawn from the same seed)."""
