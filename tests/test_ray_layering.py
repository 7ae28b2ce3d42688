"""Ray is an optional extra: only the Ray backend imports it (an import-linter contract that
can fail), and importing the package, the eval runner or the CLI loads no Ray at all."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.test_layering import REPO, copy_of_the_package, lint_imports


def test_only_the_ray_backend_may_import_ray(tmp_path):
    root = copy_of_the_package(tmp_path)
    limiter = root / "rlm_sandbox" / "eval" / "ray_limiter.py"
    loop = root / "rlm_sandbox" / "core" / "loop.py"
    assert lint_imports(root).returncode == 0
    limiter.write_text(limiter.read_text() + "\nimport ray  # forbidden: not the backend module\n")
    loop.write_text(loop.read_text() + "\nimport ray.util  # forbidden: the core\n")
    done = lint_imports(root)
    assert done.returncode != 0 and "1 broken" in done.stdout, done.stdout
    assert "rlm_sandbox.eval.ray_limiter -> ray" in done.stdout and "rlm_sandbox.core.loop -> ray" in done.stdout


def test_the_package_and_the_eval_runner_load_no_ray():
    code = ("import sys, rlm_sandbox, rlm_sandbox.eval, rlm_sandbox.eval.runner, rlm_sandbox.cli; "
            "from rlm_sandbox import RLM, run; "
            "print(sorted(m for m in sys.modules if m == 'ray' or m.startswith('ray.')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
