"""The sandbox under gVisor (runtime="runsc"): the same kernel and protocol, a user-space
kernel underneath. scripts/setup.sh registers runsc where Debian packages it."""

from __future__ import annotations

import platform

import pytest

from rlm_sandbox.sandbox import Host
from rlm_sandbox.testing import ScriptedModel
from tests.conftest import fast_limits
from tests.rlm_helpers import make_rlm

pytestmark = pytest.mark.docker


@pytest.fixture
def make_gvisor_sandbox(make_docker_sandbox, docker_client):
    if "runsc" not in (docker_client.info().get("Runtimes") or {}):
        pytest.skip("the Docker daemon has no runsc runtime (scripts/setup.sh registers it where Debian has it)")
    return lambda context=None, **kwargs: make_docker_sandbox(context, runtime="runsc", **kwargs)


def test_cells_run_under_gvisor(make_gvisor_sandbox, make_docker_sandbox):
    sb = make_gvisor_sandbox("hello", host=Host({"double": lambda x: x * 2}))
    result = sb.exec("import os, platform\nprint(platform.release(), os.getuid(), double(len(context)))")
    assert result.ok, result.error
    gvisor_release, uid, doubled = result.stdout.split()
    assert (uid, doubled) == ("65534", "10")
    # runc shares the host's kernel; gVisor answers with its own (user-space) one.
    runc_release = make_docker_sandbox().exec("import platform\nprint(platform.release())").stdout.strip()
    assert runc_release == platform.release() and gvisor_release != runc_release


def test_gvisor_sandbox_has_no_network_and_a_read_only_root(make_gvisor_sandbox):
    sb = make_gvisor_sandbox()
    result = sb.exec(
        "import socket, os\n"
        "names = [n for _, n in socket.if_nameindex()]\n"
        "try:\n    open('/etc/x', 'w')\n    ro = False\nexcept OSError:\n    ro = True\n"
        "print(sorted(names), ro)")
    assert result.stdout.strip() == "['lo'] True"


def test_gvisor_timeout_and_restart(make_gvisor_sandbox):
    sb = make_gvisor_sandbox("ctx", limits=fast_limits(cell_timeout_s=0.5, interrupt_grace_s=0.5))
    assert sb.exec("while True: pass").error.type == "CellTimeout"
    result = sb.exec("import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True: pass")
    assert result.restarted
    assert sb.exec("print(context)").stdout == "ctx\n"


def test_an_rlm_runs_under_gvisor(sandbox_factory, docker_client):
    if "runsc" not in (docker_client.info().get("Runtimes") or {}):
        pytest.skip("the Docker daemon has no runsc runtime")
    root = ScriptedModel(["```repl\nprint(context.count('a'))\n```", "FINAL(3)"])
    result = make_rlm(sandbox_factory, root, runtime="runsc").run("How many a?", "banana")
    assert (result.status, result.answer) == ("completed", "3")
