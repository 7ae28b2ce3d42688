"""inspect_ai's own conformance suite for sandbox providers, run whole against ``rlm-sandbox``.

The checks are inspect's (``inspect_ai.util._sandbox.self_check``, imported as they are);
this file only supplies the ``sandbox_env`` fixture they run over, one real hardened
container for the module, and marks the checks our security model fails on purpose.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import pytest

pytest.importorskip("inspect_ai", reason="the inspect extra is not installed: pip install -e '.[inspect]'")

from inspect_ai.util._sandbox.self_check import *  # noqa: F403 - inspect's checks, collected here

from conftest import TEST_SESSION, TEST_SESSION_LABEL
from rlm_sandbox.integrations.inspect_sandbox import RlmSandboxConfig, RlmSandboxEnvironment

pytestmark = [pytest.mark.docker, pytest.mark.anyio]

#: Checks our sandbox fails by design, each with the reason.
EXPECTED_FAILURES = {
    "test_exec_as_user": "rlm-sandbox runs every command as its unprivileged user with no capabilities and "
                         "a read-only root: there is no root to add a user with (user='root' raises "
                         "SandboxUserUnsupportedError)",
}


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
async def shared_env(anyio_backend: str, sandbox_image: str) -> AsyncIterator[Any]:
    spec = RlmSandboxConfig(labels=((TEST_SESSION_LABEL, TEST_SESSION),))
    environments = await RlmSandboxEnvironment.sample_init("self-check", spec, {})
    try:
        yield environments["default"]
    finally:
        await RlmSandboxEnvironment.sample_cleanup("self-check", spec, environments, False)


@pytest.fixture
def sandbox_env(request: pytest.FixtureRequest, shared_env: Any) -> Any:
    reason = EXPECTED_FAILURES.get(request.node.originalname)
    if reason:
        request.node.add_marker(pytest.mark.xfail(reason=reason, strict=True))
    return shared_env


# -- ours: what inspect's suite does not check -----------------------------------------

async def test_ours_commands_do_not_inherit_the_kernels_environment(shared_env: Any) -> None:
    """A command sees a fixed environment plus the caller's, nothing of the kernel process."""
    result = await shared_env.exec(["env"], env={"MINE": "1", "LANG": "C"})
    seen = dict(line.split("=", 1) for line in result.stdout.splitlines())
    assert seen == {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "HOME": "/tmp/work", "LANG": "C", "MINE": "1"}


async def test_ours_refuses_root_and_other_users_saying_why(shared_env: Any) -> None:
    from inspect_ai.util import SandboxUserUnsupportedError

    for user in ("root", "0", "www-data"):
        with pytest.raises(SandboxUserUnsupportedError, match="unprivileged user"):
            await shared_env.exec(["id"], user=user)
    assert (await shared_env.exec(["id", "-u"], user="nobody")).stdout == "65534\n"


async def test_ours_exec_output_over_the_limit_raises_with_the_tail(shared_env: Any) -> None:
    from inspect_ai.util import OutputLimitExceededError
    from inspect_ai.util._sandbox.limits import override_max_exec_output_size

    with override_max_exec_output_size(1024):
        with pytest.raises(OutputLimitExceededError, match="limit of 1 KiB was exceeded") as caught:
            await shared_env.exec(["sh", "-c", "head -c 5000 /dev/zero | tr '\\0' a; echo END"])
    assert caught.value.truncated_output is not None and caught.value.truncated_output.endswith("END\n")


async def test_ours_operations_survive_the_kernel_forgetting_its_helpers(shared_env: Any) -> None:
    """After a reset (as after a restart) the helpers are loaded again, not reported missing."""
    import anyio

    await anyio.to_thread.run_sync(shared_env.sandbox.reset)
    assert (await shared_env.exec(["echo", "again"])).stdout == "again\n"


async def test_ours_a_missing_command_is_a_failed_result_not_an_exception(shared_env: Any) -> None:
    result = await shared_env.exec(["no-such-command-here"])
    assert result.returncode == 127 and "no-such-command-here" in result.stderr


async def test_ours_rejects_a_config_it_cannot_use(shared_env: Any) -> None:
    with pytest.raises(TypeError, match="RlmSandboxConfig"):
        await RlmSandboxEnvironment.sample_init("bad", "compose.yaml", {})


async def test_ours_host_holds_no_more_than_the_limit_whatever_the_kernel_sends(shared_env: Any) -> None:
    """A kernel that keeps sending (a compromised one: commands run as its user) is refused
    past the job's limit, through the real callback path."""
    import anyio

    from rlm_sandbox.integrations.inspect_sandbox import _Job

    job = shared_env._jobs[999] = _Job({"op": "read", "limit": 1024}, None)
    try:
        flood = ("import base64\nrefused = 0\nfor _ in range(10):\n    try:\n"
                 "        inspect_put(999, 'file', base64.b64encode(b'x' * 512).decode())\n"
                 "    except Exception:\n        refused += 1\nprint(refused)")
        result = await anyio.to_thread.run_sync(shared_env.sandbox.exec, flood)
    finally:
        shared_env._jobs.pop(999)
    assert result.stdout == "8\n", result
    assert sum(map(len, job.received["file"])) == 1024 and job.overflow
