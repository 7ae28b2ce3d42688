"""One place that makes the Docker client, so every caller gets the same error."""

from __future__ import annotations

import functools
import os

import docker
from docker.errors import DockerException

from ..errors import DockerUnavailable

#: Where docker-py looks when DOCKER_HOST is not set.
DEFAULT_DOCKER_HOST = "unix:///var/run/docker.sock"


@functools.lru_cache(maxsize=None)
def _cached_client() -> docker.DockerClient:
    client = docker.from_env(timeout=120)
    client.ping()
    return client


def docker_client() -> docker.DockerClient:
    """Return a connected client for the daemon named by DOCKER_HOST (or the local socket)."""
    try:
        return _cached_client()
    except DockerException as exc:
        _cached_client.cache_clear()
        where = os.environ.get("DOCKER_HOST") or f"{DEFAULT_DOCKER_HOST} (DOCKER_HOST is not set)"
        raise DockerUnavailable(
            f"No Docker daemon answered at {where}: {exc}. Start one (`dockerd &` as root, or "
            "`bash scripts/setup.sh`, which installs and starts it on Debian), or set DOCKER_HOST "
            "to a daemon that runs. For development without Docker use sandbox=\"local\", which is "
            "NOT a security boundary."
        ) from exc
