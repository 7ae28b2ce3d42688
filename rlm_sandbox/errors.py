"""Exception classes. Each message says what went wrong and what to do next."""

from __future__ import annotations


class RLMSandboxError(Exception):
    """Base class of every error this package raises on purpose."""


# --- environment -----------------------------------------------------------------

class DockerUnavailable(RLMSandboxError):
    """No Docker daemon answered."""


class ImageError(RLMSandboxError):
    """The sandbox image is missing or could not be built."""


# --- sandbox lifecycle -------------------------------------------------------------

class SandboxError(RLMSandboxError):
    """A sandbox could not be started, or stopped working."""


class SandboxStartError(SandboxError):
    """The container or kernel did not come up."""


class SandboxClosed(SandboxError):
    """The sandbox was used after close()."""


class ProtocolError(SandboxError):
    """The other side sent something the protocol does not allow."""


class ContextTypeError(RLMSandboxError, TypeError):
    """The context is not one of the supported types."""


# --- values ------------------------------------------------------------------------

class VariableNotFound(RLMSandboxError, KeyError):
    """`get(name)` asked for a variable the namespace does not hold."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ValueTooLarge(RLMSandboxError):
    """A value is bigger than the cap for sending it out of the sandbox."""


class ValueNotSerializable(RLMSandboxError, TypeError):
    """A value cannot be turned into JSON to cross the sandbox boundary."""
