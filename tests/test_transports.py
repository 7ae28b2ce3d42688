"""Transport specifics. (Everything else runs over both transports in the conformance suite.)"""

from __future__ import annotations

import pytest

from rlm_sandbox.sandbox import DockerSandbox
from rlm_sandbox.testing import ScriptedModel
from tests.rlm_helpers import make_rlm

pytestmark = pytest.mark.docker


def test_stdio_transport_mounts_nothing_from_the_host_and_logs_nothing(make_docker_sandbox, docker_client):
    sb = make_docker_sandbox("secret context", transport="stdio")
    sb.exec("print('some output that must not land in docker logs')")
    info = docker_client.api.inspect_container(sb.container_id)
    assert info["Mounts"] == [] and info["HostConfig"]["LogConfig"]["Type"] == "none"
    listing = sb.exec("import os\nprint(sorted(os.listdir('/run')))").stdout
    assert "'rlm'" not in listing  # the socket transport's mount point does not exist


def test_socket_transport_mounts_only_its_own_directory_read_only(make_docker_sandbox, docker_client):
    sb = make_docker_sandbox(transport="socket")
    mounts = docker_client.api.inspect_container(sb.container_id)["Mounts"]
    assert len(mounts) == 1 and mounts[0]["Destination"] == "/run/rlm" and mounts[0]["RW"] is False
    assert sb.exec("import os\nprint(os.listdir('/run/rlm'))").stdout == "[]\n"  # the socket is gone


def test_auto_picks_the_socket_for_a_local_daemon(docker_client):
    assert DockerSandbox(client=docker_client).resolved_transport() == "socket"


def test_over_stdio_a_process_without_the_token_is_refused(sandbox_image, docker_client):
    from rlm_sandbox.errors import SandboxStartError

    sandbox = DockerSandbox(transport="stdio", image=sandbox_image, client=docker_client)
    start_container = sandbox._create_and_start
    # The container is started with a token other than the one the host expects.
    sandbox._create_and_start = lambda token, *, socket_dir: start_container("forged", socket_dir=socket_dir)
    with pytest.raises(SandboxStartError, match="not the kernel we started"):
        sandbox.start()
    assert sandbox.container_id is None  # and it was removed


def test_an_rlm_runs_over_stdio(sandbox_factory):
    root = ScriptedModel(["```repl\nprint(llm_query('hi'))\n```", "FINAL(done)"])
    sub = ScriptedModel(responder=lambda m: "hello from the host")
    result = make_rlm(sandbox_factory, root, sub, transport="stdio").run("q", "ctx")
    assert result.answer == "done" and "hello from the host" in root.calls[1][-1]["content"]
