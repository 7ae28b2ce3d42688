"""The tiers themselves (tests/tiers.py), on a small suite run by a real pytest in a subprocess:
the full run refuses a deselection, a partial run may filter, the fast tier runs the loop tests
on the local sandbox and says what it left out, and every run prints its counts per runtime."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

SUITE = '''
import os
import pytest

def test_needs_nothing():
    pass

@pytest.mark.docker
def test_the_container():
    pass

@pytest.mark.docker
@pytest.mark.loop
def test_the_loop():
    assert os.environ.get("RLM_SANDBOX_SANDBOX") == os.environ.get("EXPECTED_SANDBOX")
'''


@pytest.fixture
def suite(tmp_path: Path) -> Path:
    (tmp_path / "conftest.py").write_text("from tests.conftest import *  # noqa: F401,F403 (the real hooks)\n")
    (tmp_path / "test_small.py").write_text(SUITE)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    docker: d\n    loop: l\n")
    return tmp_path


def run_pytest(suite: Path, *args: str, expected_sandbox: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLM_SANDBOX_") and k != "EXPECTED_SANDBOX"}
    env.update({"PYTHONPATH": str(REPO), "TESTCONTAINERS_RYUK_DISABLED": "true"})
    if expected_sandbox is not None:
        env["EXPECTED_SANDBOX"] = expected_sandbox
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rf", *args], cwd=suite, env=env,
                          capture_output=True, text=True, timeout=600)


def test_the_full_run_runs_everything_and_counts_it_per_runtime(suite: Path) -> None:
    done = run_pytest(suite)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "tier: full: 3 of 3 collected tests selected" in done.stdout
    assert "docker: 2 run (2 passed, 0 failed), 0 skipped, 0 errors" in done.stdout
    assert "no daemon: 1 run (1 passed, 0 failed), 0 skipped, 0 errors" in done.stdout


@pytest.mark.parametrize("dropping", [["-k", "nothing"], ["-m", "not docker"],
                                      ["--deselect", "test_small.py::test_the_container"]])
def test_the_full_run_fails_if_anything_was_deselected(suite: Path, dropping: list[str]) -> None:
    done = run_pytest(suite, *dropping)
    assert done.returncode == pytest.ExitCode.USAGE_ERROR, done.stdout[-3000:] + done.stderr[-2000:]
    assert "the full run deselected" in done.stderr and "--fast" in done.stderr, done.stderr[-2000:]


def test_a_run_naming_its_files_may_filter(suite: Path) -> None:
    done = run_pytest(suite, "test_small.py", "-k", "nothing")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "tier: partial: 1 of 3 collected tests selected" in done.stdout


def test_the_fast_tier_runs_loop_tests_on_the_local_sandbox_and_says_what_it_left_out(suite: Path) -> None:
    done = run_pytest(suite, "--fast", expected_sandbox="local")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "tier: fast: 2 of 3 collected tests selected" in done.stdout
    assert "the fast tier left out 1 Docker test(s)" in done.stdout and "test_small.py (1)" in done.stdout
    assert "local sandbox (loop tests): 1 run (1 passed, 0 failed)" in done.stdout
    assert "no daemon: 1 run (1 passed, 0 failed)" in done.stdout


WRONGLY_MARKED = '''
import pytest

@pytest.mark.docker
@pytest.mark.loop
def test_marked_loop_but_uses_the_container(docker_client):
    docker_client.api.containers()
'''


def test_a_loop_test_that_reaches_docker_in_the_fast_tier_fails_naming_the_mistake(suite: Path) -> None:
    (suite / "test_wrong.py").write_text(WRONGLY_MARKED)
    done = run_pytest(suite, "--fast", expected_sandbox="local")
    assert done.returncode == pytest.ExitCode.TESTS_FAILED, done.stdout[-3000:] + done.stderr[-2000:]
    assert "FAILED test_wrong.py::test_marked_loop_but_uses_the_container" in done.stdout
    assert "it tests the container, so it must not be marked 'loop'" in done.stdout
