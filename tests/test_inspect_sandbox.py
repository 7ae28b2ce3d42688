"""inspect_ai's own conformance suite for sandbox providers, run whole against ``rlm-sandbox``.

The checks are inspect's (``inspect_ai.util._sandbox.self_check``, imported as they are);
this file only supplies the ``sandbox_env`` fixture they run over, one real hardened
container for the module, and marks the checks our security model fails on purpose.
"""

from __future__ import annotations

from typing import Any, AsyncIterator

import pytest

pytest.importorskip("inspect_ai", reason="the inspect extra is not installed: pip install -e '.[inspect]'")

from inspect_ai.util._sandbox.self_check import *  # noqa: E402,F403 - inspect's checks, collected here

from conftest import TEST_SESSION, TEST_SESSION_LABEL  # noqa: E402
from rlm_sandbox.integrations.inspect_sandbox import RlmSandboxConfig, RlmSandboxEnvironment  # noqa: E402

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
