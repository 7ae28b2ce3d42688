"""Shared fixtures: a real Docker daemon, the real sandbox image, and a leak check.

Docker is never mocked. Where no daemon answers, Docker tests FAIL with a message saying
how to get one, unless RLM_SANDBOX_ALLOW_SKIP_DOCKER=1 (local development only).
"""

from __future__ import annotations

import os
import uuid
from collections import Counter
from typing import Any, Callable, Iterator

import pytest

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rlm_sandbox.errors import DockerUnavailable
from rlm_sandbox.sandbox import DockerSandbox, Host, LocalSandbox, Sandbox, SandboxLimits, SandboxSpec

#: Every container a test starts carries this label, so the leak check finds exactly ours.
TEST_SESSION_LABEL = "org.rlm-sandbox.test-session"
TEST_SESSION = uuid.uuid4().hex[:12]


@pytest.fixture(scope="session")
def docker_client() -> Any:
    from rlm_sandbox.sandbox.client import docker_client as connect

    try:
        return connect()
    except DockerUnavailable as exc:
        if os.environ.get("RLM_SANDBOX_ALLOW_SKIP_DOCKER") == "1":
            pytest.skip(f"Docker unavailable and RLM_SANDBOX_ALLOW_SKIP_DOCKER=1: {exc}")
        pytest.fail(f"{exc}\n(Set RLM_SANDBOX_ALLOW_SKIP_DOCKER=1 to skip Docker tests locally.)",
                    pytrace=False)


@pytest.fixture(scope="session")
def sandbox_image(docker_client: Any) -> str:
    from rlm_sandbox.sandbox.image import ensure_image

    return ensure_image(client=docker_client)


@pytest.fixture(scope="session", autouse=True)
def no_leaked_containers() -> Iterator[None]:
    """After the whole run, no container started by these tests may remain."""
    yield
    try:
        from rlm_sandbox.sandbox.client import docker_client as connect

        client = connect()
    except DockerUnavailable:
        return
    leaked = client.api.containers(all=True, filters={"label": f"{TEST_SESSION_LABEL}={TEST_SESSION}"})
    for container in leaked:
        client.api.remove_container(container["Id"], force=True)
    assert not leaked, f"{len(leaked)} sandbox container(s) were left behind: {[c['Id'][:12] for c in leaked]}"


@pytest.fixture
def make_docker_sandbox(sandbox_image: str, docker_client: Any) -> Iterator[Callable[..., DockerSandbox]]:
    """Factory for started DockerSandboxes, labelled for the leak check and closed after."""
    made: list[DockerSandbox] = []

    def make(context: Any = None, *, sandbox_class: type[DockerSandbox] = DockerSandbox,
             **kwargs: Any) -> DockerSandbox:
        kwargs.setdefault("image", sandbox_image)
        kwargs.setdefault("client", docker_client)
        kwargs["labels"] = {**kwargs.get("labels", {}), TEST_SESSION_LABEL: TEST_SESSION}
        sandbox = sandbox_class(context, **kwargs)
        made.append(sandbox)
        return sandbox.start()

    yield make
    for sandbox in made:
        sandbox.close()


@pytest.fixture
def make_local_sandbox() -> Iterator[Callable[..., LocalSandbox]]:
    made: list[LocalSandbox] = []

    def make(context: Any = None, **kwargs: Any) -> LocalSandbox:
        sandbox = LocalSandbox(context, **kwargs)
        made.append(sandbox)
        return sandbox.start()

    yield make
    for sandbox in made:
        sandbox.close()


@pytest.fixture
def make_docker_stdio_sandbox(make_docker_sandbox: Callable[..., DockerSandbox]) -> Callable[..., DockerSandbox]:
    """Docker with the attached-stdio transport (what remote daemons use)."""
    return lambda context=None, **kwargs: make_docker_sandbox(context, transport="stdio", **kwargs)


@pytest.fixture(params=["docker", "docker_stdio", "local"])
def make_sandbox(request: pytest.FixtureRequest) -> Callable[..., Any]:
    """Every provider and transport: the conformance suite runs once per each."""
    return request.getfixturevalue(f"make_{request.param}_sandbox")


def fast_limits(**overrides: Any) -> SandboxLimits:
    """Limits with short timeouts so timeout tests finish quickly."""
    values: dict[str, Any] = {"cell_timeout_s": 2.0, "interrupt_grace_s": 1.0}
    values.update(overrides)
    return SandboxLimits(**values)


@pytest.fixture
def sandbox_factory(sandbox_image: str, docker_client: Any) -> Callable[..., Any]:
    """An RLM sandbox factory whose containers carry the test label (for the leak check)."""

    def factory(spec: SandboxSpec, context: Any, host: Host) -> Sandbox:
        if spec.provider == "local":
            return LocalSandbox(context, limits=spec.limits, host=host)
        return DockerSandbox(context, image=sandbox_image, client=docker_client, limits=spec.limits,
                             runtime=spec.runtime, transport=spec.transport, host=host,
                             labels={TEST_SESSION_LABEL: TEST_SESSION})

    return factory


# -- attacks run per runtime ---------------------------------------------------------------
#: test id -> the runtime it ran under, for tests parametrized by a ``runtime`` fixture
#: (tests/test_security.py runs every attack under runc and under gVisor's runsc).
_RUNTIME_OF: dict[str, str] = {}


def pytest_collection_finish(session: pytest.Session) -> None:
    for item in session.items:  # after -k/-m deselection
        runtime = getattr(getattr(item, "callspec", None), "params", {}).get("runtime")
        if runtime is not None:
            _RUNTIME_OF[item.nodeid] = runtime


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how many runtime-parametrized tests ran (passed or failed) and were skipped,
    per runtime: an attack suite silently skipped under one runtime would otherwise look green."""
    if not _RUNTIME_OF:
        return
    counts: dict[str, Counter[str]] = {runtime: Counter() for runtime in sorted(set(_RUNTIME_OF.values()))}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            runtime = _RUNTIME_OF.get(getattr(report, "nodeid", ""))
            if runtime is not None and (outcome != "passed" or report.when == "call"):
                counts[runtime][outcome] += 1
    terminalreporter.section("attacks run per runtime")
    for runtime, counted in counts.items():
        ran = counted["passed"] + counted["failed"]
        terminalreporter.write_line(f"{runtime}: {ran} run ({counted['passed']} passed, {counted['failed']} failed), "
                                    f"{counted['skipped']} skipped, {counted['error']} errors")
