"""benchmarks/bench_dspy.py's smoke run, so the script cannot rot: it exits 0 and reports every
benchmark for our interpreter and DSPy's LocalInterpreter. It asserts no timing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_dspy.py"

pytestmark = pytest.mark.docker


def test_the_dspy_benchmark_runs(sandbox_image, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLM_SANDBOX_")}
    done = subprocess.run([sys.executable, str(SCRIPT), "--smoke"], capture_output=True, text=True, timeout=600,
                          env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    assert report["leaked_containers"] == []
    for name, by_backend in report["results"].items():
        for backend in ("sandbox", "local"):
            assert by_backend[backend]["n"] >= 1, (name, backend, by_backend[backend])
        assert "p50" in by_backend["deno"] or "error" in by_backend["deno"]
    assert set(report["results"]) == {"start", "round_trip", "print", "tool_call", "variables"}
