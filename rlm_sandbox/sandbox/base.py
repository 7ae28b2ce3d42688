"""The ``Sandbox`` interface every provider implements, and the values it returns.

Providers (Docker, local subprocess, ...) differ only in how the kernel process is
started and killed; everything a caller sees is defined here, and a shared conformance
suite (tests/test_sandbox_conformance.py) runs against each one.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, Callable, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import SandboxError
from ..kernel.protocol import PREVIEW_CHARS
from .host import Host

#: What a sandbox can hold as ``context``.
Context = Union[str, bytes, list[Any], dict[str, Any], None]

_SIZE = re.compile(r"^\d+(\.\d+)?[bkmg]?$", re.IGNORECASE)


class ContainerLimits(BaseModel):
    """The limits a user sets on a sandbox. Defined once, here: ``SandboxLimits`` adds the
    internal ones, and a run's ``Settings`` takes these fields as they are."""

    memory: str = Field("1g", description="memory limit, swap included (docker syntax: 512m, 2g)")
    cpus: float = Field(1.0, gt=0, description="CPU share, e.g. 0.5 or 2")
    pids: int = Field(256, ge=8, description="most processes and threads at once "
                      "(under gVisor also at most one per 16 MiB of memory)")
    tmpfs_size: str = Field("64m", description="size of the writable /tmp")
    cell_timeout_s: float = Field(60.0, gt=0, description="time one cell may run; of each host "
                                  "call only the first 0.05 s counts (waiting for models does not)")
    cell_wall_timeout_s: float | None = Field(None, gt=0, description="wall-clock time one cell may "
                                              "take, host calls included (default: 10 x the timeout)")

    @field_validator("memory", "tmpfs_size")
    @classmethod
    def _docker_size(cls, value: str) -> str:
        if not _SIZE.match(str(value)):
            raise ValueError(f"{value!r} is not a size; write it like 512m or 2g")
        return str(value).lower()


class SandboxLimits(ContainerLimits):
    """Resource limits of one sandbox. Every field has a safe default."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    interrupt_grace_s: float = Field(2.0, gt=0, description="wait after an interrupt before "
                                     "the sandbox is killed and restarted")
    start_timeout_s: float = Field(60.0, gt=0, description="wait for the kernel to come up")
    max_stream_chars: int = Field(100_000, ge=100, description="stdout/stderr kept per cell "
                                  "and stream (head and tail); what the model is shown is the run's "
                                  "max_output_chars, a separate and smaller cap")
    max_value_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="largest value get() returns")
    max_callback_concurrency: int = Field(16, ge=1, description="host callbacks served at once")

    def wall_timeout(self, timeout: float) -> float:
        """The wall-clock limit of a cell run with ``timeout``: the one set, or 10 x timeout."""
        return self.cell_wall_timeout_s if self.cell_wall_timeout_s is not None else 10 * timeout


@dataclass(frozen=True)
class BuildProgress:
    """One step of building the sandbox image, for a sandbox's ``on_progress`` callback
    (the run turns it into an ``image_build`` event; this layer knows nothing of events)."""

    message: str
    image: str | None = None
    step: int | None = None
    steps: int | None = None
    done: bool = False


#: Told of the image build's progress; a sandbox with none set prints progress lines on stderr.
ProgressCallback = Callable[[BuildProgress], None]


@dataclass(frozen=True)
class ExecError:
    """An exception raised by a cell, or the reason a cell was stopped."""

    type: str
    message: str
    traceback: str = ""
    lineno: int | None = None

    def __str__(self) -> str:
        return f"{self.type}: {self.message}" if self.message else self.type


@dataclass(frozen=True)
class FinalAnswer:
    """How a cell finished the task: FINAL(), FINAL_VAR(), SUBMIT() or the original RLM's
    ``answer["ready"] = True`` (see kernel/dialects.py)."""

    answer: str
    source: str  # "FINAL", "FINAL_VAR", "SUBMIT" or "answer"
    name: str | None = None
    truncated: bool = False
    #: SUBMIT only: the value submitted, as JSON data (a dict of fields for SUBMIT(a=..., b=...)).
    submitted: Any = None


@dataclass(frozen=True)
class OffloadedOutput:
    """A cell's stdout that was too long to show: it stays in the sandbox as ``name``."""

    name: str
    chars: int


@dataclass(frozen=True)
class ExecResult:
    """Everything one cell produced. Output printed before an error is kept."""

    stdout: str = ""
    stderr: str = ""
    error: ExecError | None = None
    duration_s: float = 0.0
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    timed_out: bool = False
    restarted: bool = False
    final: FinalAnswer | None = None
    offloaded: OffloadedOutput | None = None
    stdout_chars: int = 0

    @property
    def ok(self) -> bool:
        return self.error is None


class Sandbox(ABC):
    """A place to run untrusted cells next to a ``context`` variable.

    Use it as a context manager so the sandbox is always torn down::

        with DockerSandbox(context="...") as sb:
            print(sb.exec("print(len(context))").stdout)

    ``on_progress``, when set before ``start()``, is told of slow one-time preparation
    (building the image) instead of it being printed on stderr.
    """

    on_progress: ProgressCallback | None = None

    @abstractmethod
    def start(self) -> "Sandbox":
        """Start the sandbox (idempotent). Called by ``__enter__``."""

    @abstractmethod
    def load(self, context: Context = None, host: Host | None = None) -> "Sandbox":
        """Give a sandbox that has run nothing its context and what the host serves it,
        starting it if needed (what a warm pool does when a sandbox is taken). A used one
        is refused."""

    @abstractmethod
    def exec(self, code: str, *, timeout: float | None = None, offload_threshold: int | None = None,
             preview_chars: int = PREVIEW_CHARS) -> ExecResult:
        """Run one cell; the namespace persists between cells.

        With ``offload_threshold``, stdout longer than that stays in the sandbox as
        ``_result_N`` (see ``ExecResult.offloaded``) and only a preview comes back.
        """

    @abstractmethod
    def get(self, name: str, *, max_bytes: int | None = None) -> Any:
        """Return a variable's value (JSON-compatible, size-capped)."""

    @abstractmethod
    def reset(self) -> None:
        """Forget every variable but ``context`` and the helpers."""

    @abstractmethod
    def close(self) -> None:
        """Stop and remove everything the sandbox made. Safe to call twice."""

    def __enter__(self) -> "Sandbox":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def final_var(self, name: str) -> FinalAnswer | None:
        """The answer ``FINAL_VAR(name)`` ends a task with (rendered and clipped as there), or None
        when there is no such variable. Sandboxes running our kernel ask it with a request; this
        default runs the helper as a cell, for a provider that implements only ``exec``."""
        return self.exec(f"FINAL_VAR({name!r})").final

    def memory_status(self) -> str:
        """What ``memory_status()`` lists: the variables the sandbox holds, with type and size.
        Raises SandboxError if it cannot be listed. Default as for :meth:`final_var`."""
        result = self.exec("print(memory_status())", timeout=10)
        if result.error is not None:
            raise SandboxError(f"memory_status() failed in the sandbox: {result.error}")
        return result.stdout
