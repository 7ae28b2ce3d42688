"""Labels that tie a container to the process that made it, and removal of orphans.

Containers are removed on close, on exceptions and at interpreter exit; a process that
is killed outright cannot do that, so every container names its owner (host, pid and
the pid's start time, which guards against pid reuse) and :func:`reap_orphans` removes
those whose owner is gone.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import tempfile
from pathlib import Path

from docker.errors import APIError, NotFound

from .client import docker_client

LABEL = "org.rlm-sandbox"
LABEL_HOST = f"{LABEL}.owner-host"
LABEL_PID = f"{LABEL}.owner-pid"
LABEL_START = f"{LABEL}.owner-start"
LABEL_SOCKET_DIR = f"{LABEL}.socket-dir"


def _process_start(pid: int) -> str:
    """The kernel's start time of a process (clock ticks since boot), or '' if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


@functools.lru_cache(maxsize=None)
def _owner(pid: int) -> tuple[str, str]:
    return socket.gethostname(), _process_start(pid)


def owner_labels(socket_dir: Path | None = None) -> dict[str, str]:
    """Labels naming this process as the owner of a new container."""
    pid = os.getpid()
    host, start = _owner(pid)
    labels = {LABEL: "1", LABEL_HOST: host, LABEL_PID: str(pid), LABEL_START: start}
    if socket_dir is not None:
        labels[LABEL_SOCKET_DIR] = str(socket_dir)
    return labels


def owner_alive(labels: dict[str, str]) -> bool:
    """Whether the process named in a container's labels still runs (on this host)."""
    if labels.get(LABEL_HOST) != socket.gethostname():
        return True  # another machine's container: not ours to judge
    try:
        pid = int(labels.get(LABEL_PID, ""))
    except ValueError:
        return False
    start = _process_start(pid)
    return bool(start) and start == labels.get(LABEL_START, start)


def reap_orphans(client=None) -> list[str]:
    """Remove this host's sandbox containers whose owner process has exited.

    Returns the ids removed. Safe to run at any time, from any process: containers of
    live owners and of other hosts are left alone.
    """
    client = client or docker_client()
    removed = []
    for container in client.api.containers(all=True, filters={"label": f"{LABEL}=1"}):
        labels = container.get("Labels") or {}
        if owner_alive(labels):
            continue
        try:
            client.api.remove_container(container["Id"], force=True)
        except NotFound:
            continue
        except APIError:
            continue  # being removed by someone else already
        removed.append(container["Id"])
        _remove_socket_dir(labels.get(LABEL_SOCKET_DIR, ""))
    return removed


def _remove_socket_dir(path: str) -> None:
    """Remove a dead sandbox's socket directory, and nothing outside the temp dir."""
    if not path:
        return
    candidate = Path(path)
    if candidate.parent == Path(tempfile.gettempdir()) and candidate.name.startswith("rlm-sandbox-"):
        shutil.rmtree(candidate, ignore_errors=True)
