"""What the namespace holds, and letting the model manage it.

Big outputs are kept in the sandbox as ``_result_N`` instead of being sent to the model
whole; ``memory_status()`` lists what is held and ``forget()`` frees it. A cell that
reads an offloaded result (it names ``_result_N``) is never offloaded again, so the model
can page through a result in slices instead of chasing new ``_result_N`` forever.
"""

from __future__ import annotations

import re
import sys
from typing import Any, Callable

OFFLOAD_PREFIX = "_result_"
_OFFLOAD_REFERENCE = re.compile(r"\b_result_\d+\b")


class Shown(str):
    """A string that a REPL displays as itself (a table), not as a quoted repr."""

    def __repr__(self) -> str:
        return str(self)


def reads_offloaded(code: str) -> bool:
    return bool(_OFFLOAD_REFERENCE.search(code))


def _size(value: Any) -> str:
    try:
        return f"len {len(value):,}"
    except TypeError:
        return f"{sys.getsizeof(value):,} bytes"


class Memory:
    def __init__(self, namespace: dict[str, Any], protected: Callable[[], set[str]]) -> None:
        self._namespace = namespace
        self._protected = protected
        self._next = 0

    def offload(self, text: str) -> str:
        name = f"{OFFLOAD_PREFIX}{self._next}"
        self._next += 1
        self._namespace[name] = text
        return name

    def status(self) -> Shown:
        """memory_status(): list the variables held here, with type and size."""
        protected = self._protected()
        rows = [(name, type(value).__name__, _size(value))
                for name, value in self._namespace.items()
                if not name.startswith("__") and (name not in protected or name == "context")]
        if not rows:
            return Shown("(no variables)")
        width = max(len(name) for name, _, _ in rows)
        lines = [f"{name:<{width}}  {kind:<10} {size}" for name, kind, size in rows]
        return Shown("\n".join(lines))

    def forget(self, *names: str) -> Shown:
        """forget(*names): delete variables to free memory (context and helpers stay)."""
        protected = self._protected()
        forgotten, kept, unknown = [], [], []
        for name in names:
            if not isinstance(name, str):
                raise TypeError("forget() takes variable names as strings, e.g. forget('_result_0')")
            if name in protected or name.startswith("__"):
                kept.append(name)
            elif name in self._namespace:
                del self._namespace[name]
                forgotten.append(name)
            else:
                unknown.append(name)
        parts = [f"forgot {', '.join(forgotten)}" if forgotten else "forgot nothing"]
        if kept:
            parts.append(f"kept {', '.join(kept)} (protected)")
        if unknown:
            parts.append(f"no such variable: {', '.join(unknown)}")
        return Shown("; ".join(parts))
