"""``SandboxSpec``: everything needed to make a sandbox, as plain data that pickles.

A run, a pool or a worker process on another machine (a Ray task) rebuilds the same
sandbox from a spec: provider name, image, runtime, transport and limits. Live objects
(a Docker client, callbacks) are not part of it; they are supplied where the sandbox is
made, so a spec can travel.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from .base import Callbacks, Context, Sandbox, SandboxLimits
from .registry import get_provider

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
    """How to make a sandbox. ``spec.create(context, callbacks=...)`` makes an unstarted one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str = Field("docker", description="a registered provider: docker, local, or your own")
    limits: SandboxLimits = Field(default_factory=SandboxLimits)
    labels: dict[str, str] = Field(default_factory=dict, description="extra container labels")

    def create(self, context: Context = None, *, callbacks: Callbacks | None = None,
               exceptions: tuple[str, ...] = ()) -> Sandbox:
        """An unstarted sandbox of this spec holding ``context``."""
        return get_provider(self.provider)(self, context, callbacks, exceptions)
