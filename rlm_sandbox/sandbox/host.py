"""``Host``: what the host serves a sandbox's cells, handed to a sandbox as one value.

A sandbox reaches back to the host through named callbacks (``llm_query``, tools ...), and
a callback's failure is raised in the cell as an exception the cell can catch by name. The
two travel together everywhere a sandbox is made (a provider, ``RLM(sandbox_factory=)``,
a pool), so they are one frozen value instead of two parameters through every signature.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

#: Host functions the kernel may call back, by the name they have inside the sandbox.
Callbacks = Mapping[str, Callable[..., Any]]


def catchable_name(exc: BaseException, names: Collection[str]) -> str:
    """The name ``exc`` has in a cell: the nearest class in its MRO among ``names`` (the
    exception classes declared to the sandbox), else its own class name.

    So an ``LLMAuthenticationError`` raised on the host arrives as ``LLMError`` when only
    ``LLMError`` was declared, and ``except LLMError`` in the cell catches it.
    """
    for cls in type(exc).__mro__:
        if cls.__name__ in names:
            return cls.__name__
    return type(exc).__name__


@dataclass(frozen=True, eq=False)
class Host:
    """``Host(callbacks, exceptions)``: host functions by the name they have in the sandbox,
    and the names of the exception classes a cell can catch when one of them fails.

    ``Host()`` serves nothing (a sandbox that only runs code). Callback names must be Python
    identifiers other than ``context``; the mapping is copied, so later changes to the
    caller's dict do not reach a sandbox already made.
    """

    callbacks: Callbacks = field(default_factory=dict)
    exceptions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.callbacks, Mapping):
            raise TypeError(f"Host callbacks must be a mapping of name to function, not "
                            f"{type(self.callbacks).__name__}")
        for name, function in self.callbacks.items():
            if not isinstance(name, str) or not name.isidentifier() or name == "context":
                raise ValueError(f"callback name {name!r} must be a Python identifier other than 'context'")
            if not callable(function):
                raise TypeError(f"callback {name!r} is a {type(function).__name__}, not a function")
        if isinstance(self.exceptions, str) or not all(isinstance(n, str) for n in self.exceptions):
            raise TypeError(f"Host exceptions must be a tuple of class names, like ('LLMError',), "
                            f"not {self.exceptions!r}")
        object.__setattr__(self, "callbacks", MappingProxyType(dict(self.callbacks)))
        object.__setattr__(self, "exceptions", tuple(self.exceptions))

    def error_name(self, exc: BaseException) -> str:
        """The name a cell catches ``exc`` by (see :func:`catchable_name`)."""
        return catchable_name(exc, self.exceptions)
