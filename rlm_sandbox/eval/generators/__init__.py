"""Built-in task generators: offline, standard library only, deterministic per seed, and lazy
(a task's context is written only when :func:`render` is called, when the task runs)."""

from __future__ import annotations

from typing import Any

from .base import CHARS_PER_TOKEN, Generator, GeneratorError, Param, Sample, derive_seed
from .multihop import MultiHop
from .oolong import Oolong
from .oolong_pairs import OolongPairs
from .salary import Salary
from .sniah import Sniah

__all__ = ["CHARS_PER_TOKEN", "GENERATORS", "Generator", "GeneratorError", "Param", "Sample", "derive_seed",
           "get_generator", "render"]

GENERATORS: dict[str, Generator] = {g.name: g for g in (Salary(), Sniah(), Oolong(), OolongPairs(), MultiHop())}


def get_generator(name: str) -> Generator:
    try:
        return GENERATORS[name]
    except KeyError:
        raise GeneratorError(f"no generator named {name!r}; the built-in ones: {', '.join(GENERATORS)}") from None


def render(name: str, params: dict[str, Any], seed: int) -> str:
    """The context of the generated task ``(name, params, seed)``: built now, not before."""
    generator = get_generator(name)
    return generator.render(seed, generator.resolve(params))
