"""Sandboxes: where untrusted cells run. See base.Sandbox for the interface."""

from .base import ExecError, ExecResult, FinalAnswer, OffloadedOutput, Sandbox, SandboxLimits
from .docker import DockerSandbox
from .local import LocalSandbox
from .pool import SandboxPool
from .reaper import reap_orphans

__all__ = ["DockerSandbox", "ExecError", "ExecResult", "FinalAnswer", "LocalSandbox", "OffloadedOutput",
           "Sandbox", "SandboxLimits", "SandboxPool", "reap_orphans"]
