"""Shared fixtures: a real Docker daemon, the real sandbox image, and a leak check; the tiers.

Docker is never mocked. Where no daemon answers, Docker tests FAIL with a message saying
how to get one, unless RLM_SANDBOX_ALLOW_SKIP_DOCKER=1 (local development only).

Two tiers (tests/tiers.py says which test runs where, and why): the full run (the README's
command and CI) runs everything and fails if anything was deselected; ``--fast`` runs the
tests that need no daemon plus the ``loop`` tests on the local sandbox, and says what it left out.
"""

from __future__ import annotations

import os
import uuid
from typing import Any, Callable, Iterator

import pytest

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

from rlm_sandbox.errors import DockerUnavailable
from rlm_sandbox.sandbox import DockerSandbox, Host, LocalSandbox, Sandbox, SandboxLimits, SandboxSpec
from tests.tiers import (  # noqa: F401 - pytest finds the tiers' hooks here, in conftest's namespace
    LOCAL_SANDBOX_ENV,
    is_fast,
    pytest_addoption,
    pytest_collection_finish,
    pytest_collection_modifyitems,
    pytest_configure,
    pytest_deselected,
    pytest_terminal_summary,
    runs_local,
)

#: Every container a test starts carries this label, so the leak check finds exactly ours.
TEST_SESSION_LABEL = "org.rlm-sandbox.test-session"
TEST_SESSION = uuid.uuid4().hex[:12]


class NoDockerInTheFastTier:
    """The fast tier's stand-in for a Docker client: a ``loop`` test runs on the local sandbox,
    so reaching Docker means it was marked ``loop`` wrongly. Any use says so."""

    def __getattr__(self, name: str) -> Any:
        raise DockerUnavailable(
            f"this test runs in the fast tier (--fast) on the local sandbox, but it used the Docker client "
            f"(.{name}): it tests the container, so it must not be marked 'loop' (tests/tiers.py)")


@pytest.fixture(scope="session")
def docker_client(request: pytest.FixtureRequest) -> Any:
    from rlm_sandbox.sandbox.client import docker_client as connect

    if is_fast(request.config):  # only loop tests are left that use it, through sandbox_factory
        return NoDockerInTheFastTier()
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

    if isinstance(docker_client, NoDockerInTheFastTier):
        return "no-image-in-the-fast-tier"  # a loop test never starts a container; building one would take minutes
    return ensure_image(client=docker_client)


@pytest.fixture(autouse=True)
def loop_tests_on_the_local_sandbox(request: pytest.FixtureRequest) -> None:
    """In the fast tier a ``loop`` test's RLM picks the local sandbox (its settings read the variable)."""
    if runs_local(request.node):
        request.getfixturevalue("monkeypatch").setenv(*LOCAL_SANDBOX_ENV)


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
