"""Sandboxes on a Docker daemon that is really separate: a second ``dockerd`` started here
with its own socket, data root, exec root, pid file, containerd and bridge, and no iptables,
reached over TCP as a remote daemon would be. ``DOCKER_HOST`` points at it; the
sandbox image is built there; the conformance suite's Docker half and an RLM run through it,
``transport="auto"`` choosing stdio (a remote daemon cannot bind-mount our socket). Needs
root (to start dockerd); the daemon, its bridge and its files are gone afterwards.

Not ``--bridge=none``: a dockerd started with it deletes the host's ``docker0`` (Moby's
``removeDefaultBridgeInterface``), which breaks the first daemon's bridge network for every
test after this one. The second daemon gets a bridge of its own, on a subnet no route of this
host uses (a machine's own network may well sit on a "documentation" range), and a test checks
``docker0`` survives."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import docker
import pytest

from rlm_sandbox.sandbox.image import DEBIAN_BASE, OFFICIAL_BASE
from tests import host_network

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parent.parent

RLM_THROUGH_IT = """
import json
from rlm_sandbox import RLM
from rlm_sandbox.api import default_sandbox_factory
from rlm_sandbox.testing import ScriptedModel

made = []
def factory(*args):
    made.append(default_sandbox_factory(*args))
    return made[-1]

with ScriptedModel(["```repl\\nprint(context.count('apple'))\\n```", "FINAL(3 apples)"]) as root:
    result = RLM(model=root.model, sandbox_factory=factory).run("How many apples?", "apple pie, apple, apple")
print(json.dumps({"answer": result.answer, "answer_from": result.answer_from, "transport": made[0].resolved_transport()}))
"""


def free_subnet() -> ipaddress.IPv4Network:
    """A /24 that overlaps no route of this host, for the second daemon's bridge."""
    try:  # 198.18/15: RFC 2544 benchmarks
        return host_network.free_subnet(("198.18.213.0/24", "10.213.77.0/24", "172.31.213.0/24"))
    except RuntimeError as exc:
        pytest.fail(f"no free subnet for the second dockerd's bridge: {exc}")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def second_daemon(docker_client):
    """A second dockerd (own everything, TCP on 127.0.0.1); yields its DOCKER_HOST."""
    if os.geteuid() != 0 or not shutil.which("dockerd"):
        pytest.fail("starting a second dockerd needs root and dockerd (scripts/setup.sh installs Docker)")
    bridge = f"rlmtest{os.getpid() % 100000}"  # an interface name has at most 15 bytes
    docker0_before = Path("/sys/class/net/docker0").exists()
    subprocess.run(["ip", "link", "add", bridge, "type", "bridge"], check=True, capture_output=True)
    subnet = free_subnet()
    subprocess.run(["ip", "addr", "add", f"{subnet[1]}/{subnet.prefixlen}", "dev", bridge], check=True,
                   capture_output=True)
    root = Path(tempfile.mkdtemp(prefix="rlm-dockerd-"))  # short: a Unix socket path has ~100 bytes
    (root / "daemon.json").write_text("{}")  # not /etc/docker/daemon.json: nothing shared with the first
    host = f"tcp://127.0.0.1:{free_port()}"
    log = open(root / "dockerd.log", "wb")
    daemon = subprocess.Popen(
        ["dockerd", "--config-file", str(root / "daemon.json"), "--host", f"unix://{root}/docker.sock",
         "--host", host, "--data-root", str(root / "data"), "--exec-root", str(root / "exec"),
         "--pidfile", str(root / "docker.pid"), f"--bridge={bridge}", "--iptables=false", "--ip-masq=false"],
        stdout=log, stderr=subprocess.STDOUT)
    client = None
    try:
        deadline = time.monotonic() + 60
        while client is None:
            try:
                client = docker.DockerClient(base_url=host, timeout=120)
            except docker.errors.DockerException:
                if daemon.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the second dockerd did not start: {(root / 'dockerd.log').read_text()[-2000:]}")
                time.sleep(0.3)
        assert client.info()["DockerRootDir"] == str(root / "data")  # really another daemon
        assert Path("/sys/class/net/docker0").exists() == docker0_before, "the second dockerd removed docker0"
        # No registry here: hand it the base image (as `docker save | docker load` would), not ours.
        base = next(name for name in (OFFICIAL_BASE, DEBIAN_BASE) if docker_client.images.list(name=name))
        client.images.load(b"".join(docker_client.images.get(base).save(named=True)))
        yield host, client
        assert client.containers.list(all=True) == [], "containers left on the second daemon"
    finally:
        if client is not None:
            client.close()
        daemon.terminate()
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
        log.close()
        subprocess.run(["umount", "-R", str(root / "data")], capture_output=True)
        subprocess.run(["ip", "link", "delete", bridge], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def on(host: str, *command: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKER_HOST": host, "PYTHONPATH": str(REPO), "TESTCONTAINERS_RYUK_DISABLED": "true",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([sys.executable, *command], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def started_containers(client, since: int) -> set[str]:
    """Sandbox containers (not image-build steps) the daemon started since ``since``."""
    return {event.get("id") for event in client.events(since=since, until=int(time.time()) + 1, decode=True,
                                                       filters={"type": "container", "event": "start",
                                                                "label": "org.rlm-sandbox=1"})}


def test_the_conformance_suite_passes_on_a_second_daemon_over_stdio(second_daemon):
    host, client = second_daemon
    since = int(time.time()) - 1
    # The "docker" provider leaves transport at "auto"; over TCP that must mean stdio.
    done = on(host, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_sandbox_conformance.py",
              "-k", "docker and not docker_stdio", "-x")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in done.stdout and "skipped" not in done.stdout.splitlines()[-1]
    assert any(image.labels.get("org.rlm-sandbox.kernel-hash") for image in client.images.list())  # built there
    assert len(started_containers(client, since)) >= 40  # the suite's sandboxes ran on the second daemon


def test_an_rlm_runs_on_the_second_daemon_with_auto_choosing_stdio(second_daemon):
    host, client = second_daemon
    time.sleep(1.0)  # events are filtered by whole seconds: leave the previous test's last second behind
    since = int(time.time())
    done = on(host, "-c", RLM_THROUGH_IT)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert (outcome["answer"], outcome["answer_from"], outcome["transport"]) == ("3 apples", "final", "stdio")
    assert len(started_containers(client, since)) == 1  # its sandbox ran on the second daemon
    assert not client.containers.list(all=True)  # and is gone
