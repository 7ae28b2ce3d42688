"""Evaluation suites for CI: task files and built-in generators, scorers that follow the
benchmarks' own rules, a concurrent and resumable runner, reports (JSON, Markdown, JUnit,
HTML), record and replay of model traffic, and a scripted oracle. Uses only the public API.

    from rlm_sandbox.eval import run_suite
    summary = run_suite(["sniah", "salary"], model="scripted/oracle", out="eval-out", n=4)
    print(summary.mean_score, summary.ok)

docs/EVAL.md describes task files, generators, scorers, outputs and cassettes.
"""

from __future__ import annotations

from typing import Any

_EXPORTS = {
    "run_suite": "runner", "arun_suite": "runner", "EvalError": "runner",
    "Task": "tasks", "load_tasks": "tasks", "generate_tasks": "tasks", "write_tasks": "tasks",
    "TaskFileError": "tasks", "SuiteSummary": "summary", "TaskResult": "results", "score": "scorers",
    "SCORERS": "scorers", "GENERATORS": "generators", "ORACLE_MODEL": "oracle", "TaskJob": "backend",
    "LocalBackend": "backend", "execute_job": "backend",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'rlm_sandbox.eval' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{module_name}", __name__), name)
    globals()[name] = value
    return value
