"""DockerSandbox: the kernel in a locked-down container.

Every default below answers one way hostile code could hurt the host; each has a test
in tests/test_security.py that attacks it from inside. The only host path mounted is
the sandbox's own socket directory.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, Literal

from docker.errors import DockerException, NotFound
from docker.types import LogConfig, Ulimit
from docker.utils import parse_bytes

from ..errors import SandboxClosed, SandboxStartError
from .attach import AttachedStream
from .base import Context, SandboxLimits
from .client import docker_client
from .host import Host
from .kernel_sandbox import SOCKET_NAME, KernelSandbox
from .reaper import owner_labels

Transport = Literal["auto", "socket", "stdio"]
SANDBOX_UID = 65534  # "nobody": exists in every Debian-based image
SOCKET_MOUNT = "/run/rlm"
_SIGNALS = {int(sig): sig.name for sig in signal.Signals}
#: Host tasks allowed per guest task under gVisor. The host's pids cgroup counts gVisor's own
#: threads (the Sentry, the gofer and, on the ptrace platform, one stub thread per Sentry
#: thread in every guest address space): about 40 for an idle sandbox, about 30 more per
#: busy multi-threaded guest process (measured in BENCHMARKS.md). A guest limit of ``pids``
#: is therefore a host ceiling of ``pids * 64`` tasks, which gVisor never nears.
GVISOR_HOST_TASKS_PER_TASK = 64
#: Memory set aside per guest task under gVisor. A sleeping forked kernel costs the sandbox
#: 7-9 MiB there (gVisor's per-process state; 0.8 MiB under runc), so a fork flood up to
#: ``pids`` = 256 needed 2 GiB and ran the default 1 GiB sandbox out of memory: the kernel
#: was killed instead of the cell getting EAGAIN. One task per 16 MiB keeps a flood within
#: half the memory (measured in docs/DECISIONS.md, issue 17).
GVISOR_MEMORY_PER_TASK = 16 << 20
#: The fewest tasks a gVisor sandbox is allowed (the kernel itself runs 4: init, and its
#: main, reader and capture threads), whatever its memory.
GVISOR_MIN_TASKS = 8


def is_gvisor(runtime: str | None) -> bool:
    """True for Docker runtimes named after gVisor's runsc ("runsc", "runsc-kvm", ...)."""
    return runtime is not None and runtime.startswith("runsc")


def task_limit(limits: SandboxLimits, runtime: str | None) -> int:
    """The most processes and threads a sandbox may hold at once: ``pids`` under runc; under
    gVisor also no more than one per GVISOR_MEMORY_PER_TASK of its memory (at least
    GVISOR_MIN_TASKS), so that a fork flood is refused before it exhausts the memory."""
    if not is_gvisor(runtime):
        return limits.pids
    by_memory = parse_bytes(limits.memory) // GVISOR_MEMORY_PER_TASK
    return min(limits.pids, max(GVISOR_MIN_TASKS, by_memory))


class DockerSandbox(KernelSandbox):
    """Runs cells in a Docker container with no network, no capabilities and hard limits.

    ``image`` defaults to the recommended image for this kernel version (built on first
    use). ``runtime="runsc"`` runs it under gVisor when the daemon has that runtime.
    """

    kernel_uid = SANDBOX_UID

    def __init__(self, context: Context = None, *, image: str | None = None,
                 limits: SandboxLimits | None = None, runtime: str | None = None,
                 transport: Transport = "auto", host: Host | None = None, labels: dict[str, str] | None = None,
                 client: Any = None) -> None:
        super().__init__(context, limits=limits, host=host)
        if transport not in ("auto", "socket", "stdio"):
            raise ValueError(f"transport must be 'auto', 'socket' or 'stdio', not {transport!r}")
        self.image = image
        self.runtime = runtime
        self.transport = transport
        self._labels = dict(labels or {})
        self._client = client
        self._container_id: str | None = None
        self._image_tag: str | None = None
        self._attached: AttachedStream | None = None

    @property
    def container_id(self) -> str | None:
        return self._container_id

    def _docker(self) -> Any:
        if self._client is None:
            self._client = docker_client()
        return self._client

    def _resolve_image(self) -> str:
        """Check (or build) the image once per sandbox, not on every restart."""
        if self._image_tag is None:
            from .image import ensure_image

            self._image_tag = ensure_image(self.image, client=self._docker(), progress=self.on_progress or True)
        return self._image_tag

    def resolved_transport(self) -> str:
        """"auto" means the Unix socket when the daemon runs on this machine (it can
        bind-mount our directory), and the container's stdio otherwise."""
        if self.transport != "auto":
            return self.transport
        return "socket" if self._docker().api.base_url == "http+docker://localhost" else "stdio"

    def host_config(self, socket_dir: Path | None) -> dict[str, Any]:
        """The hardened HostConfig (exposed so tests can check it, and so users can see it).

        ``socket_dir`` is mounted for the socket transport; the stdio transport mounts
        nothing from the host at all.
        """
        limits: SandboxLimits = self.limits
        gvisor = is_gvisor(self.runtime)
        tasks = task_limit(limits, self.runtime)
        return self._docker().api.create_host_config(
            # Read-only: connect() works, but a cell cannot store files on the host or
            # plant a file where the next kernel's socket must go.
            binds={str(socket_dir): {"bind": SOCKET_MOUNT, "mode": "ro"}} if socket_dir else None,
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": f"rw,noexec,nosuid,nodev,size={limits.tmpfs_size},mode=1777"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            # Under runc the pids cgroup counts the sandbox's own processes and threads; a
            # fork flood gets EAGAIN. Under gVisor it counts gVisor's host threads too, and
            # when it is reached gVisor's Go runtime cannot make a thread and the whole
            # sandbox dies (exit 2). So there the guest's limit is RLIMIT_NPROC, enforced
            # by gVisor's kernel on the sandbox's own tasks (its own user namespace: no
            # sharing with other sandboxes), and the cgroup is a far host ceiling. Its
            # processes cost more memory there, so memory bounds their number too.
            pids_limit=limits.pids * GVISOR_HOST_TASKS_PER_TASK if gvisor else limits.pids,
            ulimits=[Ulimit(name="nproc", soft=tasks, hard=tasks)] if gvisor else None,
            mem_limit=limits.memory,
            memswap_limit=limits.memory,
            nano_cpus=int(limits.cpus * 1e9),
            init=True,
            ipc_mode="private",
            # Over stdio the protocol itself is the container's output: keep it out of logs.
            log_config=LogConfig(type="none") if socket_dir is None else
            LogConfig(type="json-file", config={"max-size": "1m", "max-file": "1"}),
            runtime=self.runtime,
        )

    def _open_kernel(self, token: str) -> Any:
        with self._timed("resolve_image"):
            self._resolve_image()  # here, so that start_timings shows it apart from the launch
        if self.resolved_transport() == "socket":
            return super()._open_kernel(token)
        with self._timed("launch"):
            self._attached = self._create_and_start(token, socket_dir=None)
        return self._attached

    def _launch(self, socket_dir: Path, token: str) -> None:
        self._create_and_start(token, socket_dir=socket_dir)

    def _create_and_start(self, token: str, *, socket_dir: Path | None) -> AttachedStream | None:
        """Create and start the container; over stdio, attach to it first (so no output
        is missed) and return the attached stream."""
        api = self._docker().api
        image = self._resolve_image()
        if self._closed:  # Docker would recreate a removed socket directory as a bind source
            raise SandboxClosed("the sandbox was closed while it was starting")
        environment = {"RLM_KERNEL_TOKEN": token}
        if socket_dir is None:
            environment["RLM_KERNEL_TRANSPORT"] = "stdio"
        else:
            environment["RLM_KERNEL_SOCKET"] = f"{SOCKET_MOUNT}/{SOCKET_NAME}"
        try:
            created = api.create_container(
                image,
                user=f"{SANDBOX_UID}:{SANDBOX_UID}",
                environment=environment,
                labels={**self._labels, **owner_labels(socket_dir)},
                working_dir="/tmp",
                network_disabled=True,
                stdin_open=socket_dir is None,
                host_config=self.host_config(socket_dir),
            )
            self._container_id = created["Id"]
            attached = None
            if socket_dir is None:
                attached = AttachedStream.from_docker(api.attach_socket(
                    self._container_id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1}))
            api.start(self._container_id)
            return attached
        except DockerException as exc:
            hint = ""
            if self.runtime and "runtime" in str(exc).lower():
                hint = (f" The daemon has no runtime {self.runtime!r}: register it in "
                        "/etc/docker/daemon.json (scripts/setup.sh does this for runsc).")
            raise SandboxStartError(f"could not start the sandbox container: {exc}.{hint}") from None

    def _state(self) -> dict[str, Any] | None:
        """The container's State; {} when Docker cannot say, None when the container is gone."""
        if self._container_id is None:
            return None
        try:
            return self._docker().api.inspect_container(self._container_id).get("State", {})
        except NotFound:
            return None
        except DockerException:
            return {}

    def _alive(self) -> bool:
        return bool((self._state() or {}).get("Running"))

    def _kill(self) -> None:
        container_id, self._container_id = self._container_id, None
        if container_id is None:
            return
        try:
            self._docker().api.remove_container(container_id, force=True)
        except NotFound:
            pass
        except DockerException:
            pass  # reap_orphans() will find it: it is labelled with our pid

    def _death_reason(self) -> str:
        """What Docker says happened to the container, and the one thing to do about it."""
        if self._container_id is None:
            return "the sandbox container is gone"
        try:
            self._docker().api.wait(self._container_id, timeout=3)
        except Exception:  # noqa: BLE001 - still running, or gone: inspecting says which
            pass
        state = self._state()
        if state is None or state.get("Status") in ("removing", "dead"):  # `rm -f` kills, then removes
            return ("the sandbox container was removed from outside rlm-sandbox (`docker rm -f` or a "
                    "cleanup job); if that was not you, find what removes containers on this host")
        if state.get("OOMKilled"):
            return (f"the sandbox ran out of memory (limit {self.limits.memory}): use less memory in the "
                    "cell, or raise the `memory` limit")
        if state.get("Running"):
            return "the kernel closed its connection"
        code = state.get("ExitCode")
        if not isinstance(code, int):
            return "the sandbox container stopped, and Docker does not say why"
        if code > 128 and code - 128 in _SIGNALS:
            name = _SIGNALS[code - 128]
            return (f"the kernel was killed by {name}, not for its memory limit (Docker says it was not "
                    f"OOM-killed): something outside the sandbox stopped it (`docker kill`/`docker stop`, "
                    "or the host running out of memory: see `dmesg`), or the cell killed its own process")
        return f"the kernel exited with code {code}"

    def _startup_diagnostics(self) -> str:
        if self._attached is not None and self._attached.stderr_tail:
            return "Kernel stderr: " + self._attached.stderr_tail.decode("utf-8", "replace")[-2000:]
        if self._container_id is None:
            return ""
        try:
            logs = self._docker().api.logs(self._container_id, tail=30).decode("utf-8", "replace")
        except DockerException:
            return ""
        return f"Container log: {logs[-2000:]}" if logs.strip() else ""
