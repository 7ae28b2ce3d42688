"""Evaluation suites for CI: task files and built-in generators, scorers that follow the
benchmarks' own rules, a concurrent and resumable runner, reports (JSON, Markdown, JUnit,
HTML), record and replay of model traffic, and a scripted oracle. Uses only the public API.

    from rlm_sandbox.eval import SuiteConfig, run_suite
    summary = run_suite(["sniah", "salary"], SuiteConfig(model="scripted/oracle", out="eval-out", n=4))
    print(summary.mean_score, summary.ok)

docs/EVAL.md describes task files, generators, scorers, outputs and cassettes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

# The names load on first use (the runner pulls in the engine); a type checker reads the
# imports below instead, so it sees each name's real type, not ``Any`` from ``__getattr__``.
# tests/test_eval_exports.py keeps the two lists the same.
if TYPE_CHECKING:
    from .backend import Backend, LocalBackend, TaskJob, execute_job
    from .generators import GENERATORS
    from .oracle import ORACLE_MODEL
    from .progress import SuiteProgress
    from .results import TaskResult
    from .runner import arun_suite, run_suite
    from .scorers import SCORERS, score
    from .suite_config import EvalError, SuiteConfig
    from .summary import SuiteSummary
    from .tasks import Task, TaskFileError, generate_tasks, load_tasks, write_tasks

_EXPORTS = {
    "run_suite": "runner", "arun_suite": "runner", "SuiteConfig": "suite_config", "EvalError": "suite_config",
    "Task": "tasks", "load_tasks": "tasks", "generate_tasks": "tasks", "write_tasks": "tasks",
    "TaskFileError": "tasks", "SuiteSummary": "summary", "TaskResult": "results", "score": "scorers",
    "SCORERS": "scorers", "GENERATORS": "generators", "ORACLE_MODEL": "oracle", "TaskJob": "backend",
    "Backend": "backend", "LocalBackend": "backend", "execute_job": "backend", "SuiteProgress": "progress",
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
