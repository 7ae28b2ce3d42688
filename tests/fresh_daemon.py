"""A second Docker daemon that has never run anything: its own socket, data root, exec
root, pid file, containerd and bridge, no iptables rules (the first daemon's stay as they
are). tests/test_remote_docker.py reaches one over TCP as a remote daemon; run as a module
it rehearses "a machine that never ran the tests" on this one:

    .venv/bin/python -m tests.fresh_daemon tests/test_attacks.py tests/test_security.py -x

starts a fresh daemon on a Unix socket (a local daemon: the socket transport, bind mounts),
registers runsc in it when the first daemon has it, runs pytest with ``DOCKER_HOST``
pointing at it (the sandbox image, and its base unless ``--load-base`` copies the first
daemon's, are built there from nothing), and removes the daemon, its bridge and its files.

Not ``--bridge=none``: a dockerd started with it deletes the host's ``docker0`` (Moby's
``removeDefaultBridgeInterface``), which breaks the first daemon's bridge network. The
second daemon gets a bridge of its own, on a subnet no route of this host uses.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import docker

from tests.host_network import free_subnet

#: Subnets for the second daemon's bridge, first free one wins (198.18/15: RFC 2544 benchmarks).
SUBNETS = ("198.18.213.0/24", "10.213.77.0/24", "172.31.213.0/24")


@dataclass
class SecondDaemon:
    host: str  # its DOCKER_HOST
    client: docker.DockerClient
    root: Path  # its files: daemon.json, dockerd.log, data/


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def second_dockerd(*, tcp: bool, runtimes: dict[str, Any] | None = None) -> Iterator[SecondDaemon]:
    """Start a dockerd with an empty data root; yield it; stop it and remove everything.
    ``tcp``: reached on 127.0.0.1 (a remote daemon), else on a Unix socket (a local one)."""
    if os.geteuid() != 0 or not shutil.which("dockerd"):
        raise RuntimeError("starting a second dockerd needs root and dockerd (scripts/setup.sh installs Docker)")
    bridge = f"rlmtest{os.getpid() % 100000}"  # an interface name has at most 15 bytes
    docker0_before = Path("/sys/class/net/docker0").exists()
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True, capture_output=True)
    root = Path(tempfile.mkdtemp(prefix="rlm-dockerd-"))  # short: a Unix socket path has ~100 bytes
    daemon = log = client = None
    try:
        subnet = free_subnet(SUBNETS)
        subprocess.run(["ip", "addr", "add", f"{subnet[1]}/{subnet.prefixlen}", "dev", bridge], check=True,
                       capture_output=True)
        # Not /etc/docker/daemon.json: nothing shared with the first daemon.
        (root / "daemon.json").write_text(json.dumps({"runtimes": runtimes} if runtimes else {}))
        unix = f"unix://{root}/docker.sock"
        host = f"tcp://127.0.0.1:{free_port()}" if tcp else unix
        log = open(root / "dockerd.log", "wb")  # noqa: SIM115 - the daemon writes it; closed below
        daemon = subprocess.Popen(
            ["dockerd", "--config-file", str(root / "daemon.json"), "--host", unix,
             *(["--host", host] if tcp else []), "--data-root", str(root / "data"), "--exec-root",
             str(root / "exec"), "--pidfile", str(root / "docker.pid"), f"--bridge={bridge}",
             "--iptables=false", "--ip-masq=false"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while client is None:
            try:
                client = docker.DockerClient(base_url=host, timeout=120)
                client.ping()
            except docker.errors.DockerException:
                client = None
                if daemon.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the second dockerd did not start: "
                                       f"{(root / 'dockerd.log').read_text()[-2000:]}") from None
                time.sleep(0.3)
        assert client.info()["DockerRootDir"] == str(root / "data")  # really another daemon
        assert Path("/sys/class/net/docker0").exists() == docker0_before, "the second dockerd removed docker0"
        yield SecondDaemon(host, client, root)
    finally:
        if client is not None:
            client.close()
        if daemon is not None:
            daemon.terminate()
            try:
                daemon.wait(timeout=60)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        if log is not None:
            log.close()
        subprocess.run(["umount", "-R", str(root / "data")], capture_output=True)
        subprocess.run(["ip", "link", "delete", bridge], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def load_image(source: docker.DockerClient, target: docker.DockerClient, name: str) -> None:
    """Copy an image between daemons, as `docker save | docker load` would (no registry here)."""
    target.images.load(b"".join(source.images.get(name).save(named=True)))


def main(argv: list[str]) -> int:
    """Rehearse on a fresh daemon: ``[--load-base] PYTEST_ARGS...``."""
    from rlm_sandbox.sandbox.image import ensure_base

    load_base = "--load-base" in argv
    args = [arg for arg in argv if arg != "--load-base"]
    first = docker.from_env()
    runtimes = {name: spec for name, spec in (first.info().get("Runtimes") or {}).items() if name.startswith("runsc")}
    runtimes = {name: {"path": spec["path"], "runtimeArgs": spec.get("runtimeArgs") or []}
                for name, spec in runtimes.items()}
    with second_dockerd(tcp=False, runtimes=runtimes) as fresh:
        print(f"fresh daemon at {fresh.host}: images {fresh.client.images.list()}, "
              f"bridge IPAM {fresh.client.api.inspect_network('bridge')['IPAM']['Config']}", flush=True)
        if load_base:
            load_image(first, fresh.client, ensure_base(first, progress=False))
        env = {**os.environ, "DOCKER_HOST": fresh.host, "TESTCONTAINERS_RYUK_DISABLED": "true",
               "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                              cwd=Path(__file__).resolve().parent.parent, env=env)
        left = fresh.client.containers.list(all=True)
        if left:
            print(f"containers left on the fresh daemon: {[c.name for c in left]}", flush=True)
        return done.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
