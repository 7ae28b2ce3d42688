"""Sandboxes: where untrusted cells run. See base.Sandbox for the interface, spec.SandboxSpec
for a sandbox as plain data and the providers that make one by name, and host.Host for what
the host serves a sandbox (callbacks, catchable exception names). Every sandbox is made
through one seam, ``(spec, context, host) -> Sandbox``."""

from .base import ContainerLimits, ExecError, ExecResult, FinalAnswer, OffloadedOutput, Sandbox, SandboxLimits
from .docker import DockerSandbox
from .host import Host
from .local import LocalSandbox
from .pool import SandboxPool
from .reaper import reap_orphans
from .spec import ContainerChoice, SandboxFactory, SandboxSpec, UnknownProvider, provider_names, register_provider

__all__ = ["ContainerChoice", "ContainerLimits", "DockerSandbox", "ExecError", "ExecResult", "FinalAnswer", "Host",
           "LocalSandbox", "OffloadedOutput", "Sandbox", "SandboxFactory", "SandboxLimits", "SandboxPool",
           "SandboxSpec", "UnknownProvider", "provider_names", "reap_orphans", "register_provider"]
