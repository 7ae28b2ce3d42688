"""The test tiers, and the counts printed at the end of every run.

- **full** (the README's command, CI): every test; Docker tests on Docker. Deselecting anything
  (``-m``, ``-k``, ``--deselect``, ``--lf``) is an error, so a green full run means every test ran.
  To run part of the suite, name the test files: that is a **partial** run, where filters are fine.
- **fast** (``--fast``, ``bash scripts/test.sh --fast``): the tests that need no daemon, plus the
  tests marked ``loop`` on the local sandbox. A ``loop`` test drives the RLM loop through the
  ``sandbox_factory`` fixture and asserts nothing about the container, so the local sandbox (the
  same kernel and protocol, in a host process) tests the same thing. The fast tier leaves out the
  other Docker tests and says which; a ``loop`` test that reaches Docker anyway fails, naming it.

conftest.py imports the hooks below; they are here to keep conftest about fixtures.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

#: Set on a loop test's environment in the fast tier: the RLM's settings pick the local sandbox,
#: and the ``sandbox_factory`` fixture builds a LocalSandbox for it.
LOCAL_SANDBOX_ENV = ("RLM_SANDBOX_SANDBOX", "local")

#: Fixtures that need a Docker daemon; a test using any of them needs the daemon.
DOCKER_FIXTURES = frozenset({"docker_client", "sandbox_image", "make_docker_sandbox", "make_docker_stdio_sandbox"})

#: Providers of the parametrized ``make_sandbox`` fixture that run on Docker.
DOCKER_PROVIDERS = frozenset({"docker", "docker_stdio"})


class _State:
    """What this session's hooks learned, for the summary at its end."""

    tier = "full"
    collected = 0
    deselected: list[pytest.Item] = []
    left_out: list[pytest.Item] = []
    runtime_of: dict[str, str] = {}
    attack_runtime_of: dict[str, str] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--fast", action="store_true", default=False,
                     help="the fast tier: tests that need no Docker daemon, plus the 'loop' tests on the local "
                          "sandbox (tests/tiers.py); the full run is the default")


def pytest_configure(config: pytest.Config) -> None:
    _State.tier, _State.collected, _State.deselected, _State.left_out = "full", 0, [], []
    _State.runtime_of, _State.attack_runtime_of = {}, {}


def is_fast(config: pytest.Config) -> bool:
    return bool(config.getoption("--fast"))


def needs_docker(item: pytest.Item) -> bool:
    """Marked docker, using a Docker fixture, or the Docker flavour of ``make_sandbox``."""
    params = getattr(getattr(item, "callspec", None), "params", {})
    return (item.get_closest_marker("docker") is not None
            or bool(DOCKER_FIXTURES & set(getattr(item, "fixturenames", ())))
            or params.get("make_sandbox") in DOCKER_PROVIDERS)


def runs_local(item: pytest.Item) -> bool:
    """A loop test in the fast tier: it runs on the local sandbox instead of Docker."""
    return is_fast(item.config) and item.get_closest_marker("loop") is not None


def runtime_of(item: pytest.Item) -> str:
    if runs_local(item):
        return "local sandbox (loop tests)"
    return "docker" if needs_docker(item) else "no daemon"


def _is_partial(config: pytest.Config) -> bool:
    """Test files or node ids were named on the command line: a run of part of the suite."""
    return config.args_source == pytest.Config.ArgsSource.ARGS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _State.collected = len(items)
    for item in items:
        if needs_docker(item) and item.get_closest_marker("docker") is None:
            item.add_marker(pytest.mark.docker)  # so -m docker / -m "not docker" mean what they say
    if is_fast(config):
        _State.tier = "fast"
        _State.left_out = [item for item in items if needs_docker(item) and not runs_local(item)]
        if _State.left_out:
            config.hook.pytest_deselected(items=_State.left_out)
            left = set(_State.left_out)
            items[:] = [item for item in items if item not in left]
    elif _is_partial(config):
        _State.tier = "partial"


def pytest_deselected(items: list[pytest.Item]) -> None:
    _State.deselected.extend(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    left = set(_State.left_out)
    filtered = [item for item in _State.deselected if item not in left]
    if _State.tier == "full" and filtered and not session.config.getoption("collectonly"):
        raise pytest.UsageError(
            f"the full run deselected {len(filtered)} test(s) (-m, -k, --deselect or --lf), e.g. "
            f"{filtered[0].nodeid}: the full run must run every test. Name test files to run part of the "
            f"suite (bash scripts/test.sh tests/test_x.py -k name), or run the fast tier with --fast.")
    for item in session.items:  # after deselection
        _State.runtime_of[item.nodeid] = runtime_of(item)
        attack_runtime = getattr(getattr(item, "callspec", None), "params", {}).get("runtime")
        if attack_runtime is not None:
            _State.attack_runtime_of[item.nodeid] = attack_runtime


def _counts(terminalreporter: Any, runtime_by_id: dict[str, str]) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = {runtime: Counter() for runtime in sorted(set(runtime_by_id.values()))}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            runtime = runtime_by_id.get(getattr(report, "nodeid", ""))
            if runtime is not None and (outcome != "passed" or report.when == "call"):
                counts[runtime][outcome] += 1
    return counts


def _write_counts(terminalreporter: Any, counts: dict[str, Counter[str]]) -> None:
    for runtime, counted in counts.items():
        ran = counted["passed"] + counted["failed"]
        terminalreporter.write_line(f"{runtime}: {ran} run ({counted['passed']} passed, {counted['failed']} failed), "
                                    f"{counted['skipped']} skipped, {counted['error']} errors")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say which tier ran, what it left out, and how many tests ran per runtime: a suite
    silently skipped under one runtime (an attack under gVisor, the loop tests on Docker)
    would otherwise look green."""
    terminalreporter.section("tests per tier and runtime")
    selected = _State.collected - len(_State.deselected)
    terminalreporter.write_line(f"tier: {_State.tier}: {selected} of {_State.collected} collected tests selected")
    if _State.left_out:
        per_file = Counter(item.nodeid.split("::")[0] for item in _State.left_out)
        terminalreporter.write_line(f"the fast tier left out {len(_State.left_out)} Docker test(s) that test the "
                                    f"container (the full run has them): "
                                    + ", ".join(f"{name} ({count})" for name, count in sorted(per_file.items())))
    _write_counts(terminalreporter, _counts(terminalreporter, _State.runtime_of))
    if _State.attack_runtime_of:
        terminalreporter.section("attacks run per runtime")
        _write_counts(terminalreporter, _counts(terminalreporter, _State.attack_runtime_of))
