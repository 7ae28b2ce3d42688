"""``SandboxSpec``: everything needed to make a sandbox, as plain data that pickles, and
the providers that make one from it, by name.

A run, a pool or a worker process on another machine (a Ray task) rebuilds the same
sandbox from a spec: provider name, image, runtime, transport and limits. Live objects
(a Docker client, callbacks) are not part of it; they are supplied where the sandbox is
made (a :class:`~.host.Host`), so a spec can travel.

There is one seam for making sandboxes, ``(spec, context, host) -> Sandbox`` (unstarted):
a provider registered by name has it, ``RLM(sandbox_factory=)`` takes it, and a pool's
``sandbox_factory`` is one. The registry lives here with the spec it reads, so neither
module needs the other.
"""

from __future__ import annotations

import inspect
from typing import Callable, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import RLMSandboxError
from .base import Context, Sandbox, SandboxLimits
from .host import Host

Transport = Literal["auto", "socket", "stdio"]


class ContainerChoice(BaseModel):
    """Which container a sandbox runs in. Defined once, here: a run's ``Settings`` takes
    these fields as they are."""

    image: str | None = Field(None, description="sandbox image (default: built for this kernel)")
    runtime: str | None = Field(None, description="container runtime, e.g. runsc for gVisor")
    transport: Transport = Field("auto", description="socket (a bind-mounted Unix socket) or stdio (the "
                                 "container's attached stdin/stdout, for remote daemons); auto picks socket "
                                 "for a local daemon")


class SandboxSpec(ContainerChoice):
    """How to make a sandbox. ``spec.create(context, host)`` makes an unstarted one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str = Field("docker", description="a registered provider: docker, local, or your own")
    limits: SandboxLimits = Field(default_factory=SandboxLimits)
    labels: dict[str, str] = Field(default_factory=dict, description="extra container labels")

    def create(self, context: Context = None, host: Host | None = None) -> Sandbox:
        """An unstarted sandbox of this spec holding ``context`` and serving ``host``."""
        return get_provider(self.provider)(self, context, host or Host())


#: The seam every sandbox is made through: ``(spec, context, host) -> Sandbox``, unstarted.
SandboxFactory = Callable[[SandboxSpec, Context, Host], Sandbox]
#: A factory registered by name (``SandboxSpec(provider=name)``, ``sandbox=name`` in settings).
Provider = SandboxFactory


class UnknownProvider(RLMSandboxError, ValueError):
    """No sandbox provider has that name."""


def check_factory(factory: Callable[..., Sandbox], what: str = "sandbox_factory") -> SandboxFactory:
    """Return ``factory`` if it can be called as ``(spec, context, host)``; otherwise raise a
    TypeError saying the signature it needs (a factory of the earlier 4-argument form,
    ``(context, callbacks, exceptions, settings)``, would otherwise fail deep in a run)."""
    if not callable(factory):
        raise TypeError(f"{what} must be a function (spec, context, host) -> Sandbox, not a "
                        f"{type(factory).__name__}")
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # a callable whose signature Python cannot read: calling it will say
        return factory
    try:
        signature.bind(None, None, None)
    except TypeError:
        name = getattr(factory, "__qualname__", type(factory).__name__)
        params = ", ".join(_shown(parameter) for parameter in signature.parameters.values())
        raise TypeError(
            f"{what} {name}({params}) cannot be called as (spec, context, host). A sandbox factory takes "
            "spec (a SandboxSpec: the run's sandbox settings), context and host (a Host: the callbacks and "
            "the exception names a cell may catch) and returns an unstarted Sandbox, e.g. "
            "`lambda spec, context, host: spec.create(context, host)`. The earlier form "
            "(context, callbacks, exceptions, settings) is gone: callbacks and exceptions are host.callbacks "
            "and host.exceptions, and settings.sandbox_spec() is spec") from None
    return factory


def _shown(parameter: inspect.Parameter) -> str:
    """A parameter as a message shows it: its name, starred if it collects (no annotations)."""
    if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
        return "*" + parameter.name
    if parameter.kind is inspect.Parameter.VAR_KEYWORD:
        return "**" + parameter.name
    return parameter.name


def _docker(spec: SandboxSpec, context: Context, host: Host) -> Sandbox:
    from .docker import DockerSandbox

    return DockerSandbox(context, image=spec.image, runtime=spec.runtime, transport=spec.transport,
                         limits=spec.limits, host=host, labels=spec.labels)


def _local(spec: SandboxSpec, context: Context, host: Host) -> Sandbox:
    from .local import LocalSandbox

    return LocalSandbox(context, limits=spec.limits, host=host)


# Built-ins import their module only when first used, so naming a provider costs nothing.
_providers: dict[str, Provider] = {"docker": _docker, "local": _local}


def register_provider(name: str, provider: Provider, *, replace: bool = False) -> None:
    """Make ``SandboxSpec(provider=name)`` (and ``sandbox=name`` in settings) use ``provider``,
    a function ``(spec, context, host) -> Sandbox`` returning an unstarted sandbox."""
    if not name.isidentifier():
        raise ValueError(f"provider name {name!r} must be an identifier, like 'docker'")
    if name in _providers and not replace:
        raise ValueError(f"a sandbox provider named {name!r} exists; pass replace=True to replace it")
    _providers[name] = check_factory(provider, f"sandbox provider {name!r}")


def provider_names() -> list[str]:
    return sorted(_providers)


def get_provider(name: str) -> Provider:
    try:
        return _providers[name]
    except KeyError:
        raise UnknownProvider(f"no sandbox provider named {name!r}; known: {', '.join(provider_names())} "
                              "(register others with rlm_sandbox.sandbox.register_provider)") from None
