"""ruff and mypy are part of the test run (issue 18, item 9).

Their rules live in pyproject.toml (``[tool.ruff]``, ``[tool.mypy]``, where the strict modules are
listed in one place); these tests run the venv's own binaries, as CI would, and fail with their
output. A throwaway package shows that the configuration can fail: a strict module without
annotations, a wrong type elsewhere, an unused import and a long line are each caught. mypy keeps
its cache in the tree's ``.mypy_cache`` (a fresh checkout's first run is the slow one).
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
#: A suppression names its codes, then says why: "noqa: CODE - why" (or "noqa: CODE  # why"), and
#: "type: ignore[code]  # why" (mypy allows nothing but a comment after its brackets).
NOQA = re.compile(r"#\s*noqa\b(?P<rest>.*)")
NOQA_SAYS_WHY = re.compile(r":\s*[A-Z]+[0-9]+(\s*,\s*[A-Z]+[0-9]+)*\s+(-|#)\s*\S")
IGNORE = re.compile(r"#\s*type:\s*ignore\b(?P<rest>.*)")
IGNORE_SAYS_WHY = re.compile(r"\[[a-z-]+(\s*,\s*[a-z-]+)*\]\s+#\s*\S")


def run(tool: str, *args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / tool), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_ruff_finds_nothing() -> None:
    done = run("ruff", "check", "--no-cache", ".")
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_nothing() -> None:
    done = run("mypy", "--cache-dir", str(REPO / ".mypy_cache"))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Success: no issues found" in done.stdout, done.stdout


def unexplained_suppressions(root: Path) -> list[str]:
    """Each ``noqa`` and ``type: ignore`` comment under ``root`` that names no code or says no why."""
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if "noqa" not in text and "ignore" not in text:
            continue
        tokens = tokenize.generate_tokens(io.StringIO(text).readline)
        for token in tokens:
            if token.type != tokenize.COMMENT:
                continue
            noqa, ignore = NOQA.search(token.string), IGNORE.search(token.string)
            if (noqa and not NOQA_SAYS_WHY.match(noqa["rest"])) or (
                    ignore and not IGNORE_SAYS_WHY.match(ignore["rest"])):
                found.append(f"{path.relative_to(root.parent)}:{token.start[0]}: {token.string}")
    return found


def test_every_noqa_and_type_ignore_names_its_code_and_says_why() -> None:
    found = [line for folder in ("rlm_sandbox", "tests", "benchmarks", "examples")
             for line in unexplained_suppressions(REPO / folder)]
    assert not found, ("write `# noqa: CODE - why` or `# type: ignore[code]  # why`:\n" + "\n".join(found))


def test_the_suppression_check_sees_a_bare_noqa_and_ignore(tmp_path: Path) -> None:
    (tmp_path / "bad.py").write_text("import os  # noqa\nx: int = 'a'  # type: ignore[assignment]\n"
                                     "import re  # noqa: F401 - kept for doctests\ns = '# noqa'\n")
    found = unexplained_suppressions(tmp_path)
    assert [line.split(": ", 1)[0] for line in found] == [f"{tmp_path.name}/bad.py:1", f"{tmp_path.name}/bad.py:2"]


def throwaway_package(root: Path) -> Path:
    """A copy of the configuration and a small package named like ours, with one fault of each kind."""
    (root / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    package = root / "rlm_sandbox"
    package.mkdir()
    (package / "__init__.py").write_text('"""A stand-in."""\n')
    # api is in the strict list: an unannotated function is an error there ...
    (package / "api.py").write_text("def unannotated(x):\n    return x\n")
    # ... and allowed in a module at the default level, where a wrong type is still an error
    (package / "chat.py").write_text("def unannotated(x):\n    return x\n\n\ncount: int = 'many'\n")
    (package / "untrusted.py").write_text("import os\n\nLINE = '" + "x" * 130 + "'\n")
    return root


def test_the_configuration_fails_on_what_it_is_for(tmp_path: Path) -> None:
    root = throwaway_package(tmp_path)
    ruff = run("ruff", "check", "--no-cache", "--output-format", "concise", ".", cwd=root)
    assert ruff.returncode == 1, ruff.stdout + ruff.stderr
    assert "rlm_sandbox/untrusted.py:1:8: F401" in ruff.stdout, ruff.stdout
    assert "rlm_sandbox/untrusted.py:3:121: E501" in ruff.stdout, ruff.stdout
    mypy = run("mypy", "--cache-dir", str(tmp_path / "cache"), cwd=root)
    assert mypy.returncode == 1, mypy.stdout + mypy.stderr
    errors = [line for line in mypy.stdout.splitlines() if ": error: " in line]
    assert any(line.startswith("rlm_sandbox/api.py:1:") and "[no-untyped-def]" in line for line in errors), errors
    assert any(line.startswith("rlm_sandbox/chat.py:5:") and "[assignment]" in line for line in errors), errors
    assert len(errors) == 2, errors  # chat.py's unannotated function is fine at the default level
