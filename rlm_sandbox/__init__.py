"""rlm-sandbox: Recursive Language Models whose code runs in a locked-down container."""

from .errors import RLMSandboxError
from .sandbox import DockerSandbox, ExecResult, LocalSandbox, Sandbox, SandboxLimits, reap_orphans

__version__ = "0.1.0"

__all__ = ["DockerSandbox", "ExecResult", "LocalSandbox", "RLMSandboxError", "Sandbox",
           "SandboxLimits", "reap_orphans", "__version__"]
