"""Exception classes. Each message says what went wrong and what to do next."""

from __future__ import annotations

from typing import Any


class RLMSandboxError(Exception):
    """Base class of every error this package raises on purpose.

    ``result`` is set when the error ended a run (its sandbox could not start, or broke):
    the run's :class:`~rlm_sandbox.RLMResult` with ``status`` "error", so a caller can still
    report what it did and what it cost. None otherwise.
    """

    result: Any = None


# --- settings ----------------------------------------------------------------------

class SettingsError(RLMSandboxError, ValueError):
    """One or more settings have values they cannot take.

    ``problems`` holds ``(name, value, reason)`` per bad setting: the setting's name, the
    value given as text (None for a secret, which is never shown) and what is accepted.
    """

    def __init__(self, problems: list[tuple[str, str | None, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{name}={value}: {reason}" if value is not None else f"{name}: {reason}"
                                   for name, value, reason in problems))


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


# --- budgets -----------------------------------------------------------------------

class BudgetExceeded(RLMSandboxError):
    """A host-enforced limit was reached. Raised inside the cell that hit it, by name."""

    def __init__(self, limit: str, allowed: float, used: float, message: str) -> None:
        super().__init__(message)
        self.limit, self.allowed, self.used = limit, allowed, used


class BudgetNotEnforceable(RLMSandboxError, ValueError):
    """A limit was set that the host cannot enforce, e.g. ``max_cost_usd`` with a model that
    has no known price. Raised before anything starts: a limit is kept or refused, never ignored."""


# --- models ------------------------------------------------------------------------

class ModelNotAllowed(RLMSandboxError, PermissionError):
    """Cell code named a model for ``llm_query(model=...)`` that the host did not allow.
    Raised inside the cell, by name; the run goes on. The host picks the models, never the
    code it runs: ``allowed_sub_models`` lists those a cell may name besides ``sub_model``."""


class LLMError(RLMSandboxError):
    """A model call failed.

    `transient` is True when the failure was the kind that goes away on its own (rate
    limits, timeouts, 5xx, dropped connections) and the client gave up after retrying;
    False when retrying cannot help (bad key, unknown model, rejected request). The
    original exception is kept as `__cause__`. `input_tokens`, `output_tokens` and
    `cost_usd` are what the failed call was still charged for (attempts that were answered
    with an empty reply), `cached_input_tokens` and `cache_write_tokens` the parts of
    `input_tokens` read from and written to the provider's prompt cache; `cost_usd` is None
    when the model has no known price.
    """

    def __init__(self, message: str, *, model: str, transient: bool, attempts: int = 1,
                 status_code: int | None = None) -> None:
        super().__init__(message)
        self.model = model
        self.transient = transient
        self.attempts = attempts
        self.status_code = status_code
        self.input_tokens = 0
        self.output_tokens = 0
        self.cached_input_tokens = 0
        self.cache_write_tokens = 0
        self.cost_usd: float | None = 0.0
        self.retry_causes: tuple[Any, ...] = ()  # RetryCause of each retried attempt
        self.detail = message  # what the provider said, when the message adds advice to it


class LLMAuthenticationError(LLMError):
    """The provider refused the credentials, or none were found."""


class LLMModelNotFound(LLMError):
    """The model name or its provider prefix is not known."""


class LLMContextWindowExceeded(LLMError):
    """The prompt is longer than the model accepts."""


class LLMUnavailable(LLMError):
    """The provider kept failing with transient errors until the retries ran out."""


class LLMEmptyReply(LLMUnavailable):
    """The provider kept answering with no reply: no choices, or null content and no tool calls."""


class UnrecordedRequest(LLMError):
    """A replayed run sent a model request its cassette does not hold (not retried).

    The message names the cassette, the call and the closest recorded request; ``label``
    says whose run it was (an eval task's id)."""

    def __init__(self, message: str, *, model: str, label: str | None = None) -> None:
        super().__init__(message, model=model, transient=False)
        self.label = label
