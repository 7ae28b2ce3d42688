"""Functions inside the sandbox that call back to the host and block until it answers.

``llm_query`` and friends are stubs: the host decides what they do, so budgets, model
choice and API keys stay out of the container. Several threads may call at once; each
call waits on its own slot, matched to the host's reply by id.
"""

from __future__ import annotations

import itertools
import threading
from typing import Any, Callable


class HostCallError(Exception):
    """A call to the host failed; the message says why (budget, model error, ...)."""


class _Slot:
    __slots__ = ("event", "reply")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.reply: dict[str, Any] | None = None


class HostCalls:
    """Sends ``call`` messages and hands each reply to the thread waiting for it."""

    def __init__(self, send: Callable[[dict[str, Any]], None]) -> None:
        self._send = send
        self._pending: dict[str, _Slot] = {}
        self._ids = itertools.count(1)
        self._error_classes: dict[str, type[HostCallError]] = {"HostCallError": HostCallError}
        self._closed = False

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self._closed:
            raise HostCallError(f"{name}(): the connection to the host is closed")
        call_id = f"c{next(self._ids)}"
        slot = _Slot()
        self._pending[call_id] = slot
        try:
            try:
                self._send({"type": "call", "id": call_id, "name": name,
                            "args": list(args), "kwargs": kwargs})
            except (TypeError, ValueError) as exc:
                raise TypeError(
                    f"{name}() takes only JSON-serialisable arguments (str, int, float, "
                    f"bool, None, list, dict): {exc}") from None
            slot.event.wait()
        finally:
            self._pending.pop(call_id, None)
        reply = slot.reply
        if reply is None:
            raise HostCallError(f"{name}(): the connection to the host was lost")
        if reply.get("ok"):
            return reply.get("value")
        error = found if isinstance(found := reply.get("error"), dict) else {}
        raise self.error_class(str(error.get("type", "HostCallError")))(
            str(error.get("message", f"{name}() failed on the host")))

    def resolve(self, reply: dict[str, Any]) -> None:
        call_id = reply.get("id")
        slot = self._pending.get(call_id) if isinstance(call_id, str) else None
        if slot is not None:
            slot.reply = reply
            slot.event.set()

    def close(self) -> None:
        """Wake every waiting caller with an error: the host has gone."""
        self._closed = True
        for slot in list(self._pending.values()):
            slot.event.set()

    def error_class(self, name: str) -> type[HostCallError]:
        """The exception class for an error the host named, e.g. ``BudgetExceeded``.

        Classes are made on first use and reused, so ``except BudgetExceeded`` works in
        cells once the class has been put in the namespace.
        """
        if not name.isidentifier():
            name = "HostCallError"
        cls = self._error_classes.get(name)
        if cls is None:
            cls = type(name, (HostCallError,), {"__module__": "builtins"})
            self._error_classes[name] = cls
        return cls

    def stub(self, name: str, doc: str) -> Callable[..., Any]:
        """A namespace function that forwards its arguments to the host callback ``name``."""

        def host_function(*args: Any, **kwargs: Any) -> Any:
            return self.call(name, args, kwargs)

        host_function.__name__ = host_function.__qualname__ = name
        host_function.__doc__ = doc or f"{name}(...): runs on the host."
        return host_function
