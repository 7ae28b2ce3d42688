"""Faults injected from outside a sandbox, with real Docker and real host processes.

A container killed or removed mid-cell, a host process sent SIGTERM, SIGHUP or SIGKILL
mid-cell, an image without the kernel, no Docker daemon: each ends in bounded time, with
a message naming what happened and the one thing to do, and nothing left behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from docker.errors import NotFound

from rlm_sandbox.errors import ImageError
from rlm_sandbox.sandbox import DockerSandbox, Host, reap_orphans
from rlm_sandbox.sandbox.image import ensure_base
from rlm_sandbox.sandbox.reaper import LABEL_SOCKET_DIR
from tests.conftest import fast_limits
from tests.test_security import _OnlyOurContainers
from tests.waiting import wait_for_event, wait_until

pytestmark = pytest.mark.docker

REPO_ROOT = Path(__file__).resolve().parent.parent
CTX = "the context survives"


@pytest.fixture(scope="session")
def session_labels(request: pytest.FixtureRequest) -> dict[str, str]:
    """The test-session label of the conftest pytest loaded, so the leak check sees ours."""
    for plugin in request.config.pluginmanager.get_plugins():
        if hasattr(plugin, "TEST_SESSION_LABEL") and hasattr(plugin, "TEST_SESSION"):
            return {plugin.TEST_SESSION_LABEL: plugin.TEST_SESSION}
    raise RuntimeError("tests/conftest.py was not loaded")


def gone(docker_client: Any, container_id: str) -> bool:
    try:
        docker_client.api.inspect_container(container_id)
    except NotFound:
        return True
    return False


# -- a container killed or removed from outside, mid-cell ----------------------------------

OUTSIDE = {
    "docker_kill": (lambda api, cid: api.kill(cid), "killed by SIGKILL, not for its memory limit"),
    "docker_stop": (lambda api, cid: api.stop(cid, timeout=1), "killed by SIGTERM, not for its memory limit"),
    "docker_rm_f": (lambda api, cid: api.remove_container(cid, force=True), "removed from outside rlm-sandbox"),
}


@pytest.mark.parametrize("transport", ["socket", "stdio"])
@pytest.mark.parametrize("fault", sorted(OUTSIDE))
def test_a_container_stopped_from_outside_mid_cell(make_docker_sandbox, docker_client, fault, transport):
    """`docker kill`, `docker stop` or `docker rm -f` while a cell sleeps: the cell ends
    within seconds with KernelDied saying what Docker says happened (before: "killed
    (SIGKILL), most likely for using too much memory" for a kill, "the sandbox container
    is gone" for a removal), the sandbox restarts with its context, and neither container
    is left once it is closed."""
    act, expected = OUTSIDE[fault]
    cell_started = threading.Event()  # the barrier: the cell calls back to the host, then sleeps
    sb = make_docker_sandbox(CTX, transport=transport, limits=fast_limits(cell_timeout_s=60),
                             host=Host({"cell_started": cell_started.set}))
    assert sb.exec("kept = 1").ok
    first = sb.container_id

    def act_once_the_cell_runs() -> None:
        wait_for_event(cell_started, what="the cell starting")
        act(docker_client.api, first)

    threading.Thread(target=act_once_the_cell_runs, daemon=True).start()
    started = time.monotonic()
    result = sb.exec("print('sleeping', flush=True)\ncell_started()\nimport time\ntime.sleep(300)")
    assert time.monotonic() - started < 20
    assert result.error is not None and result.error.type == "KernelDied", result
    assert expected in result.error.message, result.error.message
    assert "most likely" not in result.error.message
    assert result.restarted and "variables were lost" in result.error.message
    assert sb.exec("print(context)").stdout == CTX + "\n"
    second = sb.container_id
    assert second != first and gone(docker_client, first)
    sb.close()
    assert gone(docker_client, second)


def test_an_out_of_memory_kill_is_reported_as_one(make_docker_sandbox):
    """The control of the above: a real OOM kill (Docker's OOMKilled) still says memory,
    and names the limit and what to do."""
    sb = make_docker_sandbox(CTX, limits=fast_limits(memory="128m", cell_timeout_s=30))
    result = sb.exec("hog = b'x' * (384 << 20)")
    if result.error is not None and result.error.type == "MemoryError":
        pytest.skip("the allocation failed cleanly instead of being OOM-killed")
    assert result.error is not None and result.error.type == "KernelDied", result
    assert "ran out of memory (limit 128m)" in result.error.message
    assert "raise the `memory` limit" in result.error.message


class SlowToCreate(DockerSandbox):
    """A sandbox whose container is created only when the test says so."""

    def __init__(self, *args: Any, go: threading.Event, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.go = go
        self.waiting = threading.Event()

    def _create_and_start(self, token: str, *, socket_dir: Path | None) -> Any:
        self.waiting.set()
        self.go.wait(30)
        return super()._create_and_start(token, socket_dir=socket_dir)


def test_closing_a_sandbox_while_it_starts_leaves_nothing(sandbox_image, docker_client, session_labels):
    """A run that ends before it needs its sandbox closes it while it is still starting
    (the common case: a model that answers at once). Close waits for the start to finish
    or fail, then removes everything; the container is never created, and the socket
    directory is not left behind (Docker recreates a missing bind source as an empty
    root-owned directory, which nothing would remove)."""
    go = threading.Event()
    labels = {**session_labels, "org.rlm-sandbox.test-host": uuid.uuid4().hex}
    sb = SlowToCreate(CTX, go=go, image=sandbox_image, client=docker_client, labels=labels)
    starter = threading.Thread(target=lambda: pytest.raises(Exception, sb.start), daemon=True)  # noqa: B017 - any failure will do
    starter.start()
    assert sb.waiting.wait(30)
    socket_dir = sb.socket_dir
    closer = threading.Thread(target=sb.close)
    closer.start()
    wait_until(lambda: sb.closed, what="close() marking the sandbox closed (it then waits for the start)")
    go.set()
    starter.join(30)
    closer.join(30)
    assert socket_dir is not None and not socket_dir.exists()
    assert sb.container_id is None and _ours(docker_client, labels) == []


# -- the host process stopped by a signal, mid-cell ----------------------------------------

def child_env() -> dict[str, str]:
    path = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "RLM_SANDBOX_QUIET": "1"}


SANDBOX_HOST = r'''
import json, sys
from rlm_sandbox.sandbox import DockerSandbox, Host
image, labels, transport, setup = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
exec(setup)
def started():
    print("busy", flush=True)
sb = DockerSandbox("ctx", image=image, labels=labels, transport=transport, host=Host({"started": started}))
sb.start()
sb.exec("started()\n" + CELL)
'''

#: A cell that ignores interrupts, so only the kernel's own exit can end it.
STUBBORN_CELL = "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"

RLM_HOST = r'''
import json, sys
from rlm_sandbox import RLM
from rlm_sandbox.models import LLMClient
from rlm_sandbox.sandbox import DockerSandbox
from rlm_sandbox.testing import ScriptedModel
image, labels = sys.argv[1], json.loads(sys.argv[2])
root = ScriptedModel(["```repl\nstarted()\nimport time\ntime.sleep(300)\n```", "FINAL(never)"])
def factory(spec, context, host):
    return DockerSandbox(context, image=image, labels=labels, host=host, limits=spec.limits)
def started():
    print("busy", flush=True)
    return "ok"
rlm = RLM(model=root.model, sandbox_factory=factory, llm=LLMClient(), tools={"started": started},
          cell_timeout_s=600)
print(rlm.run("q", "ctx").status, flush=True)
'''


def _ours(docker_client: Any, labels: dict[str, str]) -> list[dict[str, Any]]:
    return docker_client.api.containers(all=True, filters={"label": [f"{k}={v}" for k, v in labels.items()]})


def _start_host(script: str, sandbox_image: str, labels: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", script, sandbox_image, json.dumps(labels), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env())


def _busy_container(host: subprocess.Popen[str], docker_client: Any, labels: dict[str, str],
                    said: list[str] | None = None) -> dict[str, Any]:
    """The one container of a host process, once its cell runs (the cell's first act is a
    host call that prints "busy" on the host's stdout; lines before it go to ``said``)."""
    while (line := host.stdout.readline()) != "busy\n":
        assert line, f"the host ended before its cell ran: {host.stderr.read()}"
        if said is not None:
            said.append(line)
    containers = _ours(docker_client, labels)
    assert len(containers) == 1, containers
    return containers[0]


def _socket_dir(container: dict[str, Any]) -> Path | None:
    path = (container.get("Labels") or {}).get(LABEL_SOCKET_DIR)
    return Path(path) if path else None


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("transport", ["socket", "stdio"])
def test_a_host_stopped_by_sigterm_or_sighup_mid_cell_leaves_nothing(sandbox_image, docker_client,
                                                                      session_labels, signum, transport):
    """A real host process runs a real sandbox and is sent SIGTERM (docker stop, systemd,
    Kubernetes, `timeout`) or SIGHUP while a cell runs. It still dies of the signal, and
    its container and socket directory are gone (before: both stayed until `gc`)."""
    labels = {**session_labels, "org.rlm-sandbox.test-host": uuid.uuid4().hex}
    host = _start_host(SANDBOX_HOST, sandbox_image, labels, transport, "CELL = 'import time; time.sleep(300)'")
    try:
        container = _busy_container(host, docker_client, labels)
        host.send_signal(signum)
        assert host.wait(timeout=30) == -signum, host.stderr.read()
        assert _ours(docker_client, labels) == []
        socket_dir = _socket_dir(container)
        assert socket_dir is None or not socket_dir.exists()
    finally:
        host.kill()
        for leftover in _ours(docker_client, labels):
            docker_client.api.remove_container(leftover["Id"], force=True)


def test_a_run_stopped_by_sigterm_mid_cell_leaves_nothing(sandbox_image, docker_client, session_labels):
    """The same for a whole RLM run (sync ``run()``, whose sandbox lives on other threads)."""
    labels = {**session_labels, "org.rlm-sandbox.test-host": uuid.uuid4().hex}
    host = _start_host(RLM_HOST, sandbox_image, labels)
    try:
        container = _busy_container(host, docker_client, labels)
        host.send_signal(signal.SIGTERM)
        assert host.wait(timeout=30) == -signal.SIGTERM, host.stderr.read()
        assert _ours(docker_client, labels) == []
        assert not _socket_dir(container).exists()
    finally:
        host.kill()
        for leftover in _ours(docker_client, labels):
            docker_client.api.remove_container(leftover["Id"], force=True)


USER_HANDLER_FIRST = r'''
import signal
def handler(signum, frame):
    print("user handler ran", flush=True)
    raise SystemExit(0)
signal.signal(signal.SIGTERM, handler)
CELL = "import time; time.sleep(300)"
'''

USER_HANDLER_LATER = r'''
import os, signal, threading, time
def handler(signum, frame):
    print("user handler ran", flush=True)
    raise SystemExit(0)
def replace(signum, frame):  # runs on the main thread, mid-cell
    previous = signal.signal(signal.SIGTERM, handler)
    print("replaced", previous.__name__, flush=True)
signal.signal(signal.SIGUSR1, replace)
def replace_once_ours_is_in():
    while signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        time.sleep(0.01)
    os.kill(os.getpid(), signal.SIGUSR1)
threading.Thread(target=replace_once_ours_is_in, daemon=True).start()
CELL = "import time; time.sleep(300)"
'''


@pytest.mark.parametrize("setup", ["first", "later"])
def test_a_programs_own_sigterm_handler_still_runs(sandbox_image, docker_client, session_labels, setup):
    """A program with its own SIGTERM handler keeps it: installed before the first sandbox,
    ours is not installed at all; installed after, it replaces ours. Either way it runs
    (here it exits, and the usual exit-time cleanup removes the container)."""
    labels = {**session_labels, "org.rlm-sandbox.test-host": uuid.uuid4().hex}
    script = USER_HANDLER_FIRST if setup == "first" else USER_HANDLER_LATER
    host = _start_host(SANDBOX_HOST, sandbox_image, labels, "socket", script)
    try:
        said: list[str] = []
        container = _busy_container(host, docker_client, labels, said)
        if setup == "later":  # replaced mid-start or mid-cell: wait for it either way
            assert (said or [host.stdout.readline()]) == ["replaced _remove_all_then_die\n"]
        host.send_signal(signal.SIGTERM)
        out, err = host.communicate(timeout=30)
        assert "user handler ran" in out, err
        assert host.returncode == 0, err
        assert _ours(docker_client, labels) == []
        assert not _socket_dir(container).exists()
    finally:
        host.kill()
        for leftover in _ours(docker_client, labels):
            docker_client.api.remove_container(leftover["Id"], force=True)


@pytest.mark.parametrize("transport", ["socket", "stdio"])
def test_sigkill_stops_the_container_by_itself_and_gc_removes_it(sandbox_image, docker_client, session_labels,
                                                                  transport):
    """SIGKILL cannot be caught. The kernel notices its host's connection close and exits,
    even mid-way through a cell that swallows interrupts (before: that cell kept the
    container running), so the container stops by itself; reap_orphans() (`rlm-sandbox
    gc`) then removes it and its socket directory."""
    labels = {**session_labels, "org.rlm-sandbox.test-host": uuid.uuid4().hex}
    host = _start_host(SANDBOX_HOST, sandbox_image, labels, transport, f"CELL = {STUBBORN_CELL!r}")
    try:
        container = _busy_container(host, docker_client, labels)
        host.kill()
        host.wait(timeout=30)
        wait_until(lambda: not docker_client.api.inspect_container(container["Id"])["State"]["Running"], 15,
                   "the container stopping")
        removed = reap_orphans(client=_OnlyOurContainers(docker_client, labels))
        assert removed == [container["Id"]]
        assert _ours(docker_client, labels) == []
        socket_dir = _socket_dir(container)
        assert socket_dir is None or not socket_dir.exists()
    finally:
        host.kill()
        for leftover in _ours(docker_client, labels):
            docker_client.api.remove_container(leftover["Id"], force=True)


# -- what the user is told -----------------------------------------------------------------

def test_an_image_without_the_kernel_says_how_to_build_one(docker_client, session_labels):
    """An image that does not hold our kernel (here the plain Debian/Python base) used to
    start, run its own command and fail with "the kernel exited with code 0". It is now
    refused before any container starts, naming the command that builds one on it."""
    base = ensure_base(docker_client, progress=False)
    sandbox = DockerSandbox(CTX, image=base, client=docker_client, labels=session_labels)
    with pytest.raises(ImageError, match=f"rlm-sandbox image build --base {base}"):
        sandbox.start()
    assert sandbox.container_id is None


def test_no_docker_daemon_names_the_docker_host_and_the_local_option(tmp_path):
    """With no daemon at DOCKER_HOST the error shows that DOCKER_HOST and names the
    ``sandbox="local"`` option (not a class the user never typed)."""
    where = f"unix://{tmp_path}/no-docker.sock"
    probe = ("from rlm_sandbox.sandbox.client import docker_client\n"
             "try:\n    docker_client()\nexcept Exception as exc:\n    print(type(exc).__name__, exc)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                         env={**child_env(), "DOCKER_HOST": where}).stdout
    assert out.startswith("DockerUnavailable"), out
    assert where in out and 'sandbox="local"' in out and "NOT a security boundary" in out
    assert "LocalSandbox" not in out
