"""Sandboxes on a Docker daemon that is really separate: a second ``dockerd`` started here
with its own socket, data root, exec root, pid file, containerd and bridge, and no iptables,
reached over TCP as a remote daemon would be. ``DOCKER_HOST`` points at it; the
sandbox image is built there; the conformance suite's Docker half and an RLM run through it,
``transport="auto"`` choosing stdio (a remote daemon cannot bind-mount our socket). Needs
root (to start dockerd); the daemon, its bridge and its files are gone afterwards.

Not ``--bridge=none``: a dockerd started with it deletes the host's ``docker0`` (Moby's
``removeDefaultBridgeInterface``), which breaks the first daemon's bridge network for every
test after this one. The second daemon gets a bridge of its own, on a subnet no route of this
host uses (a machine's own network may well sit on a "documentation" range), and starting it
checks ``docker0`` survives (tests/fresh_daemon.py, which also rehearses a fresh machine)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from rlm_sandbox.sandbox.image import ensure_base
from tests.fresh_daemon import load_image, second_dockerd

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parent.parent

RLM_THROUGH_IT = """
import json, os
from rlm_sandbox import RLM
from rlm_sandbox.api import default_sandbox_factory
from rlm_sandbox.testing import ScriptedModel

made = []
def factory(*args):
    made.append(default_sandbox_factory(*args))
    return made[-1]

with ScriptedModel(["```repl\\nprint(context.count('apple'))\\n```", "FINAL(3 apples)"]) as root:
    result = RLM(model=root.model, sandbox_factory=factory).run("How many apples?", "apple pie, apple, apple")
print(json.dumps({"answer": result.answer, "answer_from": result.answer_from,
                  "transport": made[0].resolved_transport(), "pid": os.getpid()}))
"""


@pytest.fixture(scope="module")
def second_daemon(docker_client):
    """A second dockerd (own everything, TCP on 127.0.0.1); yields its DOCKER_HOST and client."""
    with second_dockerd(tcp=True) as fresh:
        # No registry here: hand it the base image (as `docker save | docker load` would), not ours;
        # ensure_base makes one on a first daemon that has none yet (this test may run first).
        load_image(docker_client, fresh.client, ensure_base(docker_client, progress=False))
        yield fresh.host, fresh.client
        assert fresh.client.containers.list(all=True) == [], "containers left on the second daemon"


def on(host: str, *command: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "DOCKER_HOST": host, "PYTHONPATH": str(REPO), "TESTCONTAINERS_RYUK_DISABLED": "true",
           "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([sys.executable, *command], cwd=REPO, env=env, capture_output=True, text=True, timeout=900)


def started_containers(client: Any, since: int, *labels: str) -> set[str]:
    """Sandbox containers (not image-build steps) the daemon started since ``since``, with ``labels`` too."""
    return {event.get("id") for event in client.events(since=since, until=int(time.time()) + 1, decode=True,
                                                       filters={"type": "container", "event": "start",
                                                                "label": ["org.rlm-sandbox=1", *labels]})}


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


def test_an_rlm_runs_on_the_second_daemon_with_auto_choosing_stdio(second_daemon: tuple[str, Any]) -> None:
    host, client = second_daemon
    since = int(time.time()) - 1  # whole seconds: the previous test's last one is told apart by the owner below
    done = on(host, "-c", RLM_THROUGH_IT)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert (outcome["answer"], outcome["answer_from"], outcome["transport"]) == ("3 apples", "final", "stdio")
    owner = f"org.rlm-sandbox.owner-pid={outcome['pid']}"
    assert len(started_containers(client, since, owner)) == 1  # its sandbox ran on the second daemon
    assert not client.containers.list(all=True)  # and is gone
