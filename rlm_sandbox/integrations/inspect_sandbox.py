"""inspect_ai's sandbox environment ``rlm-sandbox``: our hardened container behind inspect's interface.

``Task(..., sandbox="rlm-sandbox")`` (or ``("rlm-sandbox", RlmSandboxConfig(...))`` to choose the
image, runtime, transport and limits) gives every sample its own container with no network,
no capabilities, a read-only root and hard limits. Registered through the ``inspect_ai``
entry point, so inspect finds it by name once ``rlm-sandbox[inspect]`` is installed.

How commands run: through our kernel, not ``docker exec``. Each operation is one cell (a
call of the helpers in ``inspect_cell.py``, loaded once) that fetches its request from the host through
callbacks and runs the command with ``subprocess`` from an argument list; payloads move in
base64 chunks. So it works over both transports (a local socket, or a remote daemon's
stdio), costs a kernel round trip instead of a ``docker exec`` (about 70 ms), and never
interpolates anything into code. Operations on one sample's sandbox run one at a time.

Files go in the per-sample work directory, ``/tmp/work`` on the container's size-capped
``/tmp`` tmpfs (``noexec``: run scripts as ``sh x.sh`` or ``python3 x.py``). The root stays
read-only, and every command runs as the sandbox's unprivileged user: ``user="root"``
raises ``SandboxUserUnsupportedError``.
"""

from __future__ import annotations

import base64
import itertools
import posixpath
import threading
from importlib import resources
from typing import Any, Literal, Union, overload

import anyio
from inspect_ai.util import (
    ExecResult,
    OutputLimitExceededError,
    SandboxEnvironment,
    SandboxEnvironmentConfigType,
    SandboxEnvironmentLimits,
    SandboxUserUnsupportedError,
    sandboxenv,
)
from inspect_ai.util._sandbox.environment import SandboxUnavailableError
from pydantic import BaseModel, ConfigDict, Field

from ..errors import RLMSandboxError
from ..sandbox import ContainerChoice, Host, Sandbox, SandboxLimits, SandboxSpec
from ..sandbox import ExecResult as ExecResult_
from ..sandbox.client import docker_client
from ..sandbox.reaper import LABEL, owner_alive

NAME = "rlm-sandbox"
WORK_DIR = "/tmp/work"
#: Users a command may run as: the sandbox's own (uid 65534), by any of its names.
SANDBOX_USERS = frozenset({"nobody", "65534", "65534:65534"})
LABEL_INSPECT = f"{LABEL}.inspect"
LABEL_TASK = f"{LABEL}.inspect-task"
#: Raw bytes per chunk: base64 of it stays far under the protocol's 16 MiB line cap.
CHUNK = 4 * 1024 * 1024
#: A command with no timeout may run this long (inspect's own default is no limit).
NO_TIMEOUT_S = 24 * 3600.0
#: Time the cell itself may take beyond the command's own timeout (moving the output).
CELL_MARGIN_S = 120.0
#: The default limits for inspect: /tmp (the work directory) holds inspect's 50 MB files.
INSPECT_LIMITS = SandboxLimits(tmpfs_size="512m", memory="1g")


class RlmSandboxConfig(ContainerChoice):
    """The container ``sandbox=("rlm-sandbox", RlmSandboxConfig(...))`` gives each sample.

    A ``SandboxSpec`` as inspect needs it: hashable (inspect keys its sandboxes by config),
    so ``labels`` is a tuple of pairs.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    provider: str = Field("docker", description="a registered sandbox provider (docker: the hardened container)")
    limits: SandboxLimits = Field(INSPECT_LIMITS, description="resource limits (default: a 512 MB /tmp)")
    labels: tuple[tuple[str, str], ...] = Field((), description="extra container labels, as (name, value) pairs")

    def spec(self) -> SandboxSpec:
        return SandboxSpec(image=self.image, runtime=self.runtime, transport=self.transport,
                           provider=self.provider, limits=self.limits, labels=dict(self.labels))


DEFAULT_CONFIG = RlmSandboxConfig()

_CELL = resources.files(__package__).joinpath("inspect_cell.py").read_text(encoding="utf-8")
_ERRORS: dict[str, type[OSError]] = {
    "FileNotFoundError": FileNotFoundError, "PermissionError": PermissionError,
    "IsADirectoryError": IsADirectoryError, "NotADirectoryError": NotADirectoryError,
}


class _Job:
    """One operation's request, its input chunks and what the cell sent back."""

    def __init__(self, request: dict[str, Any], payload: bytes | None) -> None:
        self.payload = payload
        request["chunks"] = None if payload is None else -(-len(payload) // CHUNK)
        self.request = request
        self.received: dict[str, list[bytes]] = {"stdout": [], "stderr": [], "file": []}
        self.outcome: dict[str, Any] | None = None
        #: The most one stream may bring back: what the host holds whatever the kernel sends.
        self.cap: int = int(request.get("limit") or 0)
        self.sizes = {stream: 0 for stream in self.received}
        self.overflow = False

    def take(self, stream: str, data: bytes) -> None:
        if stream not in self.received:
            raise ValueError(f"no stream {stream!r}: stdout, stderr or file")
        if self.sizes[stream] + len(data) > self.cap:
            self.overflow = True
            raise ValueError(f"{stream} is over its {self.cap}-byte limit; send no more")
        self.sizes[stream] += len(data)
        self.received[stream].append(data)


class RlmSandboxEnvironment(SandboxEnvironment):
    """One sample's container. Made by ``sample_init``; inspect calls the rest."""

    _by_task: dict[str, list["RlmSandboxEnvironment"]] = {}
    _registry_lock = threading.Lock()

    def __init__(self, spec: SandboxSpec, task_name: str) -> None:
        super().__init__()
        self._jobs: dict[int, _Job] = {}
        self._ids = itertools.count(1)
        labels = {**spec.labels, LABEL_INSPECT: "1", LABEL_TASK: task_name[:200]}
        self.spec = spec.model_copy(update={"labels": labels})
        self.task_name = task_name
        self.sandbox: Sandbox = self.spec.create(None, Host({
            "inspect_job": self._job, "inspect_chunk": self._chunk,
            "inspect_put": self._put, "inspect_done": self._done}))

    # -- host callbacks the cell calls -------------------------------------------------

    def _job(self, job_id: int) -> dict[str, Any]:
        return self._jobs[job_id].request

    def _chunk(self, job_id: int, index: int) -> str:
        payload = self._jobs[job_id].payload or b""
        return base64.b64encode(payload[index * CHUNK:(index + 1) * CHUNK]).decode("ascii")

    def _put(self, job_id: int, stream: str, data: str) -> None:
        self._jobs[job_id].take(stream, base64.b64decode(data))

    def _done(self, job_id: int, outcome: dict[str, Any]) -> None:
        self._jobs[job_id].outcome = outcome

    # -- running one operation ---------------------------------------------------------

    async def _run(self, request: dict[str, Any], payload: bytes | None = None,
                   timeout: float | None = None) -> _Job:
        job_id = next(self._ids)
        job = self._jobs[job_id] = _Job(request, payload)
        cell_timeout = (timeout or NO_TIMEOUT_S) + CELL_MARGIN_S
        try:
            result = await anyio.to_thread.run_sync(self._exec_cell, job_id, cell_timeout)
        except RLMSandboxError as exc:
            raise SandboxUnavailableError(f"the rlm-sandbox container cannot run commands: {exc}") from None
        finally:
            self._jobs.pop(job_id, None)
        if job.overflow:
            raise OutputLimitExceededError(_limit_str(request), None)
        if job.outcome is None:
            if result.timed_out:
                raise TimeoutError(f"the operation did not finish within {cell_timeout:g} s")
            raise SandboxUnavailableError(
                f"the rlm-sandbox kernel did not finish the operation ({result.error or 'no outcome'}); "
                "if the sample's container was restarted, its files were lost")
        error = job.outcome.get("error")
        if error:
            kind = _ERRORS.get(error["type"], OSError)
            raise kind(f"{error['message']}: {request.get('shown', error['path'])}")
        return job

    def _exec_cell(self, job_id: int, timeout: float) -> ExecResult_:
        """Run job ``job_id``; the helpers are defined on first use and again after a
        restart (compiling them costs more than the rest of a small operation)."""
        call = f"_rlm_inspect_run({job_id:d})\n"
        result = self.sandbox.exec(call, timeout=timeout)
        if result.error and result.error.type == "NameError" and "_rlm_inspect_run" in result.error.message:
            defined = self.sandbox.exec(_CELL, timeout=CELL_MARGIN_S)
            if not defined.ok:
                raise SandboxUnavailableError(f"could not load the rlm-sandbox helpers: {defined.error}")
            result = self.sandbox.exec(call, timeout=timeout)
        return result

    def _path(self, file: str) -> str:
        return posixpath.normpath(posixpath.join(WORK_DIR, file))

    async def exec(self, cmd: list[str], input: str | bytes | None = None, cwd: str | None = None,  # noqa: A002 - inspect's name
                   env: dict[str, str] | None = None, user: str | None = None, timeout: int | None = None,
                   timeout_retry: bool = True, concurrency: bool = True) -> ExecResult[str]:
        """Run ``cmd`` (an argument list, resolved through PATH) in the sample's work directory."""
        if user is not None and str(user) not in SANDBOX_USERS:
            raise SandboxUserUnsupportedError(
                f"rlm-sandbox runs every command as its unprivileged user (nobody, uid 65534), not "
                f"{user!r}: the container has no root and no capabilities by design")
        if not cmd or not all(isinstance(arg, str) for arg in cmd):
            raise TypeError(f"cmd must be a non-empty list of strings, not {cmd!r}")
        payload = input.encode("utf-8") if isinstance(input, str) else input
        limit = SandboxEnvironmentLimits.MAX_EXEC_OUTPUT_SIZE
        request = {"op": "exec", "cmd": list(cmd), "cwd": self._path(cwd or "."), "env": dict(env or {}),
                   "home": WORK_DIR, "timeout": timeout, "limit": limit, "chunk": CHUNK, "shown": cwd or cmd[0]}
        job = await self._run(request, payload if payload is not None else None, timeout)
        outcome = job.outcome or {}
        if outcome.get("timed_out"):
            raise TimeoutError(f"{cmd[0]} did not finish within its {timeout} s timeout and was killed")
        stdout = b"".join(job.received["stdout"]).decode("utf-8", "replace")
        stderr = b"".join(job.received["stderr"]).decode("utf-8", "replace")
        if outcome.get("over"):
            raise OutputLimitExceededError(SandboxEnvironmentLimits.MAX_EXEC_OUTPUT_SIZE_STR, stdout)
        code = int(outcome["returncode"])
        return ExecResult(success=code == 0, returncode=code, stdout=stdout, stderr=stderr)

    async def write_file(self, file: str, contents: str | bytes) -> None:
        """Write ``contents`` (text as UTF-8, newlines as given), making parent directories."""
        payload = contents.encode("utf-8") if isinstance(contents, str) else bytes(contents)
        await self._run({"op": "write", "path": self._path(file), "shown": file}, payload)

    @overload
    async def read_file(self, file: str, text: Literal[True] = True) -> str: ...

    @overload
    async def read_file(self, file: str, text: Literal[False]) -> bytes: ...

    async def read_file(self, file: str, text: bool = True) -> Union[str, bytes]:
        """Read a file whole; text is strict UTF-8 with CRLF kept as it is."""
        request = {"op": "read", "path": self._path(file), "shown": file,
                   "limit": SandboxEnvironmentLimits.MAX_READ_FILE_SIZE, "chunk": CHUNK}
        job = await self._run(request)
        if (job.outcome or {}).get("over"):
            raise OutputLimitExceededError(SandboxEnvironmentLimits.MAX_READ_FILE_SIZE_STR, None)
        data = b"".join(job.received["file"])
        return data.decode("utf-8") if text else data

    # -- lifecycle -----------------------------------------------------------------------

    @classmethod
    def config_deserialize(cls, config: dict[str, Any]) -> BaseModel:
        return RlmSandboxConfig.model_validate(config)

    @classmethod
    async def task_init(cls, task_name: str, config: SandboxEnvironmentConfigType | None) -> None:
        """Check the configuration, and build the image now rather than in every sample."""
        spec = _spec(config)
        if spec.provider == "docker":
            from ..sandbox.image import ensure_image

            await anyio.to_thread.run_sync(lambda: ensure_image(spec.image, progress=True))

    @classmethod
    async def sample_init(cls, task_name: str, config: SandboxEnvironmentConfigType | None,
                          metadata: dict[str, str]) -> dict[str, SandboxEnvironment]:
        environment = cls(_spec(config), task_name)
        with cls._registry_lock:
            cls._by_task.setdefault(task_name, []).append(environment)
        try:
            await environment._start()
        except BaseException:
            await environment._close()
            raise
        return {"default": environment}

    async def _start(self) -> None:
        await anyio.to_thread.run_sync(self.sandbox.start)
        made = await self.exec(["mkdir", "-p", WORK_DIR], cwd="/")
        if not made.success:
            raise SandboxUnavailableError(f"could not make the work directory {WORK_DIR}: {made.stderr}")

    async def _close(self) -> None:
        with self._registry_lock:
            siblings = self._by_task.get(self.task_name, [])
            if self in siblings:
                siblings.remove(self)
        await anyio.to_thread.run_sync(self.sandbox.close)

    @classmethod
    async def sample_cleanup(cls, task_name: str, config: SandboxEnvironmentConfigType | None,
                             environments: dict[str, SandboxEnvironment], interrupted: bool) -> None:
        for environment in environments.values():
            if isinstance(environment, RlmSandboxEnvironment):
                await environment._close()

    @classmethod
    async def task_cleanup(cls, task_name: str, config: SandboxEnvironmentConfigType | None,
                           cleanup: bool) -> None:
        """Close what a sample left open (a sample whose cleanup never ran)."""
        if not cleanup:
            return
        with cls._registry_lock:
            left = list(cls._by_task.pop(task_name, []))
        for environment in left:
            await environment._close()

    @classmethod
    async def cli_cleanup(cls, id: str | None) -> None:  # noqa: A002 - inspect's signature
        """``inspect sandbox cleanup rlm-sandbox [ID]``: remove one container by id, or
        every inspect container of ours whose owner process is gone."""
        await anyio.to_thread.run_sync(lambda: remove_containers(id))


def remove_containers(container_id: str | None = None) -> list[str]:
    """Remove our inspect containers: ``container_id`` (ours, whatever its owner), or every
    one whose owner process has exited. Returns the ids removed."""
    client = docker_client()
    filters: dict[str, Any] = {"label": f"{LABEL_INSPECT}=1"}
    if container_id:
        filters["id"] = container_id
    removed = []
    for container in client.api.containers(all=True, filters=filters):
        if container_id is None and owner_alive(container.get("Labels") or {}):
            continue
        try:
            client.api.remove_container(container["Id"], force=True)
        except Exception:  # noqa: BLE001 - gone already, or being removed by someone else
            continue
        removed.append(container["Id"])
    return removed


def _limit_str(request: dict[str, Any]) -> str:
    return (SandboxEnvironmentLimits.MAX_READ_FILE_SIZE_STR if request["op"] == "read"
            else SandboxEnvironmentLimits.MAX_EXEC_OUTPUT_SIZE_STR)


def _spec(config: SandboxEnvironmentConfigType | None) -> SandboxSpec:
    if config is None:
        return DEFAULT_CONFIG.spec()
    if isinstance(config, RlmSandboxConfig):
        return config.spec()
    raise TypeError(f"the rlm-sandbox sandbox takes an RlmSandboxConfig as its config, not "
                    f"{type(config).__name__} {config!r}: write sandbox=(\"rlm-sandbox\", "
                    "RlmSandboxConfig(...)) with rlm_sandbox.integrations.inspect_sandbox.RlmSandboxConfig")


@sandboxenv(name=NAME)
def _register() -> type[RlmSandboxEnvironment]:
    """Registers the environment with inspect (the entry point imports this module)."""
    return RlmSandboxEnvironment
