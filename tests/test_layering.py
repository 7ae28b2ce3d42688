"""The package's layering is a contract: import-linter checks it on every test run, and a
forbidden import added to a copy of the package breaks it (so the contracts can fail)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=120)


def test_the_layering_contracts_hold():
    done = lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def copy_of_the_package(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "rlm_sandbox", tmp_path / "rlm_sandbox",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def with_imports(root: Path, added: dict[str, str]) -> subprocess.CompletedProcess:
    """Append each import line to its module (a path under rlm_sandbox/) and lint the copy."""
    for module, line in added.items():
        path = root / "rlm_sandbox" / module
        path.write_text(path.read_text() + f"\n{line}\n")
    return lint_imports(root)


def test_a_forbidden_import_breaks_a_contract(tmp_path):
    root = copy_of_the_package(tmp_path)
    assert lint_imports(root).returncode == 0  # the copy itself is clean
    repl = root / "rlm_sandbox" / "kernel" / "repl.py"
    repl.write_text(repl.read_text() + "\nfrom ..errors import RLMSandboxError  # forbidden: kernel -> ours\n")
    sandbox_base = root / "rlm_sandbox" / "sandbox" / "base.py"
    sandbox_base.write_text(sandbox_base.read_text() + "\nfrom ..core import budget  # forbidden: sandbox -> core\n")
    done = lint_imports(root)
    assert done.returncode != 0
    assert "2 broken" in done.stdout, done.stdout
    assert "rlm_sandbox.kernel.repl -> rlm_sandbox.errors" in done.stdout


def test_eval_may_use_the_public_api_but_not_core(tmp_path):
    root = copy_of_the_package(tmp_path)
    runner = root / "rlm_sandbox" / "eval" / "runner.py"
    runner.write_text(runner.read_text() + "\nfrom .. import RLM, Budget  # allowed: top-level public names\n")
    assert lint_imports(root).returncode == 0
    runner.write_text(runner.read_text() + "\nfrom ..core.loop import _Run  # forbidden: a core internal\n")
    done = lint_imports(root)
    assert done.returncode != 0 and "1 broken" in done.stdout, done.stdout
    assert "rlm_sandbox.eval.runner -> rlm_sandbox.core.loop" in done.stdout
def test_the_library_may_not_import_the_viewers(tmp_path):
    """view/ renders events for the CLI; the library must run without it (issue 10)."""
    root = copy_of_the_package(tmp_path)
    loop = root / "rlm_sandbox" / "core" / "loop.py"
    loop.write_text(loop.read_text() + "\nfrom ..view import live  # forbidden: core -> view\n")
    done = lint_imports(root)
    assert done.returncode != 0
    assert "only the CLI (and evaluation) render events with view/" in done.stdout, done.stdout
    assert "rlm_sandbox.core.loop -> rlm_sandbox.view.live" in done.stdout


def test_view_may_not_import_core_but_shares_the_fences(tmp_path):
    """issue 18 (6): view reads events; a reply's fences come from the leaf rlm_sandbox.fences,
    which may import nothing of ours, so core and view can both use it."""
    done = with_imports(copy_of_the_package(tmp_path), {
        "view/live.py": "from ..core.parsing import parse_reply  # forbidden: view -> core",
        "fences.py": "from .untrusted import visible  # forbidden: the leaf -> ours"})
    assert done.returncode != 0 and "2 broken" in done.stdout, done.stdout
    assert "view reads events, never the loop" in done.stdout, done.stdout
    assert "rlm_sandbox.view.live -> rlm_sandbox.core.parsing" in done.stdout
    assert "rlm_sandbox.fences -> rlm_sandbox.untrusted" in done.stdout


def test_the_package_may_not_import_its_test_helpers(tmp_path):
    """issue 18 (6): the demo and the oracle run on models.scripted; rlm_sandbox.testing is for tests."""
    done = with_imports(copy_of_the_package(tmp_path), {
        "cli/demo.py": "from ..testing import ScriptedModel  # forbidden: ours -> testing"})
    assert done.returncode != 0 and "1 broken" in done.stdout, done.stdout
    assert "rlm_sandbox.testing is for tests" in done.stdout, done.stdout
    assert "rlm_sandbox.cli.demo -> rlm_sandbox.testing" in done.stdout
