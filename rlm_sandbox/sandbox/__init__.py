"""Sandboxes: where untrusted cells run. See base.Sandbox for the interface, spec.SandboxSpec
for a sandbox as plain data, and registry for providers by name."""

from .base import ContainerLimits, ExecError, ExecResult, FinalAnswer, OffloadedOutput, Sandbox, SandboxLimits
from .docker import DockerSandbox
from .local import LocalSandbox
from .pool import SandboxPool
from .reaper import reap_orphans
from .registry import provider_names, register_provider
from .spec import ContainerChoice, SandboxSpec

__all__ = ["ContainerChoice", "ContainerLimits", "DockerSandbox", "ExecError", "ExecResult", "FinalAnswer",
           "LocalSandbox", "OffloadedOutput", "Sandbox", "SandboxLimits", "SandboxPool", "SandboxSpec",
           "provider_names", "reap_orphans", "register_provider"]
