"""Sandbox providers by name: ``docker`` and ``local`` built in, others registered.

A provider is a function ``(spec, context, callbacks, exceptions) -> Sandbox`` returning
an unstarted sandbox. Built-ins are imported only when first asked for, so naming a
provider costs nothing until it is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from ..errors import RLMSandboxError
from .base import Callbacks, Context, Sandbox

if TYPE_CHECKING:
    from .spec import SandboxSpec

Provider = Callable[["SandboxSpec", Context, "Callbacks | None", tuple[str, ...]], Sandbox]


class UnknownProvider(RLMSandboxError, ValueError):
    """No sandbox provider has that name."""


def _docker(spec: "SandboxSpec", context: Context, callbacks: Callbacks | None,
            exceptions: tuple[str, ...]) -> Sandbox:
    from .docker import DockerSandbox

    return DockerSandbox(context, image=spec.image, runtime=spec.runtime, transport=spec.transport,
                         limits=spec.limits, callbacks=callbacks, exceptions=exceptions, labels=spec.labels)


def _local(spec: "SandboxSpec", context: Context, callbacks: Callbacks | None,
           exceptions: tuple[str, ...]) -> Sandbox:
    from .local import LocalSandbox

    return LocalSandbox(context, limits=spec.limits, callbacks=callbacks, exceptions=exceptions)


_providers: dict[str, Provider] = {"docker": _docker, "local": _local}


def register_provider(name: str, provider: Provider, *, replace: bool = False) -> None:
    """Make ``SandboxSpec(provider=name)`` (and ``sandbox=name`` in settings) use ``provider``."""
    if not name.isidentifier():
        raise ValueError(f"provider name {name!r} must be an identifier, like 'docker'")
    if name in _providers and not replace:
        raise ValueError(f"a sandbox provider named {name!r} exists; pass replace=True to replace it")
    _providers[name] = provider


def provider_names() -> list[str]:
    return sorted(_providers)


def get_provider(name: str) -> Provider:
    try:
        return _providers[name]
    except KeyError:
        raise UnknownProvider(f"no sandbox provider named {name!r}; known: {', '.join(provider_names())} "
                              "(register others with rlm_sandbox.sandbox.register_provider)") from None


