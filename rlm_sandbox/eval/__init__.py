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
# imports below instead (``X as X``: a re-export), so it sees each name's real type, not
# ``Any`` from ``__getattr__``.
# tests/test_eval_config.py keeps the two lists the same.
if TYPE_CHECKING:
    from .backend import (
        Backend as Backend, LocalBackend as LocalBackend, TaskJob as TaskJob, execute_job as execute_job,
    )
    from .generators import GENERATORS as GENERATORS
    from .oracle import ORACLE_MODEL as ORACLE_MODEL
    from .progress import SuiteProgress as SuiteProgress
    from .results import TaskResult as TaskResult
    from .runner import arun_suite as arun_suite, run_suite as run_suite
    from .scorers import SCORERS as SCORERS, score as score
    from .suite_config import EvalError as EvalError, SuiteConfig as SuiteConfig
    from .summary import SuiteSummary as SuiteSummary
    from .tasks import (
        Task as Task, TaskFileError as TaskFileError, generate_tasks as generate_tasks, load_tasks as load_tasks,
        write_tasks as write_tasks,
    )

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
