"""``run_suite(tasks, config)``: tasks in, scored results and reports out.

The :class:`~rlm_sandbox.eval.suite_config.SuiteConfig` is checked when it is made; the tasks
(task files, built-in generators, or Task objects) and the runs' settings are checked whole
here before a directory is made (``_plan``); then each (task, epoch) not already in the output
directory runs as a self-contained job on a backend (local by default: a warm pool, a fresh
sandbox per task; ``config.ray``: a Ray cluster), at most ``concurrency`` at a time
(``_SuiteRun``). Every finished task is appended to ``results.jsonl`` at once, so a suite cut short
resumes where it stopped. At the end come ``summary.json``, ``report.md``, JUnit XML and the
HTML report; the summary says whether the build should fail (``--min-score``,
``--fail-on-error``: by default any task that ended in error fails it). Whatever one task does,
it becomes a result (``crashed`` with the reason, if nothing else) and the suite goes on, except
after a provider error no retry can mend (a bad key, an unknown model): then the tasks left are
stopped at once and the summary says so (``stopped``).
"""

from __future__ import annotations

from collections import Counter

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from .. import SandboxSpec, Settings
from .backend import Backend, LocalBackend, TaskJob, crashed_result
from .generators import GENERATORS
from .oracle import is_scripted
from .progress import SuiteProgress
from .reports import clip, report_paths, write_reports
from .results import ResultsFile, TaskResult, read_results
from .suite_config import EvalError, SuiteConfig, parse_limit
from .summary import SuiteSummary, summarise
from .tasks import Task, generate_tasks, load_tasks

if TYPE_CHECKING:
    from .ray_backend import RayBackend

__all__ = ["EvalError", "SuiteConfig", "arun_suite", "resolve_tasks", "run_suite", "select_tasks"]

MANIFEST = "run.json"
#: Tasks at once when the configuration does not say and the backend has no capacity of its own.
DEFAULT_CONCURRENCY = 4


def resolve_tasks(sources: Sequence[str | Path | Task], *, n: int, seed: int,
                  params: dict[str, Any] | None) -> list[Task]:
    """Tasks from task files, generator names and Task objects, ids unique across them."""
    tasks: list[Task] = []
    params = params or {}
    named = [GENERATORS[str(s)] for s in sources if not isinstance(s, Task) and str(s) in GENERATORS]
    unused = sorted(name for name in params if not any(name in g.params for g in named))
    if unused:
        takes = "; ".join(f"{g.name} takes {', '.join(g.params)}" for g in named) or "no generator was named"
        raise EvalError(f"parameter {', '.join(unused)}: no generator given takes it ({takes})")
    for source in sources:
        if isinstance(source, Task):
            tasks.append(source)
        elif str(source) in GENERATORS:  # each generator takes the parameters it has
            own = {name: value for name, value in params.items() if name in GENERATORS[str(source)].params}
            tasks += generate_tasks(str(source), n=n, seed=seed, params=own)
        elif Path(source).exists() or str(source).endswith(".jsonl"):
            tasks += load_tasks(source)
        else:
            raise EvalError(f"{source}: neither a task file nor a built-in generator "
                            f"({', '.join(GENERATORS)})")
    duplicates = sorted(task_id for task_id, count in Counter(task.id for task in tasks).items() if count > 1)
    if duplicates:
        raise EvalError(f"task ids must be unique across the inputs; repeated: {', '.join(duplicates[:10])}")
    if not tasks:
        raise EvalError("no tasks to run")
    return tasks


def select_tasks(tasks: list[Task], *, limit: int | str | None = None,
                 task_ids: Sequence[str] | None = None) -> list[Task]:
    """``task_ids`` (each must exist), then ``limit``: N (the first N) or "A-B" (tasks A to B, from 1)."""
    if task_ids:
        known = {task.id for task in tasks}
        missing = [task_id for task_id in task_ids if task_id not in known]
        if missing:
            raise EvalError(f"--task-id {', '.join(missing)}: no such task (the first ids: "
                            f"{', '.join(sorted(known)[:5])})")
        tasks = [task for task in tasks if task.id in set(task_ids)]
    return tasks if limit is None else tasks[parse_limit(limit)]


def _check_manifest(out: Path, manifest: dict[str, Any], force: bool) -> None:
    """Refuse to resume results made with another model or another baseline."""
    path = out / MANIFEST
    if path.exists() and not force:
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            old = {}
        differing = sorted(key for key in manifest if old.get(key) != manifest[key])
        if differing:
            held = ", ".join(f"{key}={old.get(key)!r}" for key in differing)
            raise EvalError(f"{out} holds results of another run ({held}); use another --out, or --force to run "
                            "every task again")
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def _too_many_errors(errors: int, runs: int, fail_on_error: bool | float | None) -> str | None:
    """Why the errors fail the suite, or None. As inspect_ai's ``fail_on_error``: any error by
    default (None or True); False never; 0..1 a share of the runs; above 1 a count."""
    if not errors or fail_on_error is False:
        return None
    if fail_on_error is None or fail_on_error is True:
        return f"{errors} of {runs} runs ended in error (any error fails the suite; allow some with --fail-on-error)"
    if fail_on_error <= 1:
        share = errors / runs
        return (f"{errors} of {runs} runs ended in error ({share:.1%}), more than --fail-on-error {fail_on_error} "
                "allows") if share > fail_on_error else None
    return (f"{errors} of {runs} runs ended in error, more than --fail-on-error {int(fail_on_error)} allows"
            if errors > fail_on_error else None)


def _first_error(results: list[TaskResult]) -> str:
    first = next(r for r in results if r.errored)
    return f"the first: {first.task_id} e{first.epoch}: {clip(first.error or first.status, 300)}"


def _exit_reasons(summary: SuiteSummary, results: list[TaskResult], min_score: float | None,
                  fail_on_error: bool | float | None) -> list[str]:
    reasons = []
    if summary.stopped:
        reasons.append(summary.stopped)
    if min_score is not None and summary.mean_score < min_score:
        reasons.append(f"mean score {summary.mean_score:.4f} is below --min-score {min_score}")
    errors = _too_many_errors(summary.errors, summary.runs, fail_on_error)
    if errors:
        reasons.append(f"{errors}; {_first_error(results)}")
    return reasons


async def _run_job(backend: Backend, job: TaskJob) -> TaskResult:
    """The backend's result for ``job``; whatever the backend raises is the task's ``crashed``
    result with the reason, so one task never takes the suite down."""
    try:
        return await backend.run(job)
    except Exception as exc:  # noqa: BLE001 - any failure of one task is that task's result, never the suite's
        return crashed_result(job, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


@dataclass(frozen=True)
class _Plan:
    """What the configuration resolves to before anything runs: the tasks, the runs' settings."""

    config: SuiteConfig
    wanted: list[tuple[Task, int]]  # every (task, epoch) of the suite, done or not
    settings: Settings
    run_options: dict[str, Any]
    spec: SandboxSpec
    direct_model: str | None
    scripted: bool

    @property
    def sub_model(self) -> str:
        return str(self.settings.sub_model or self.settings.model)


def _plan(sources: Sequence[str | Path | Task], config: SuiteConfig) -> _Plan:
    """Check every input (tasks, settings, the Ray extra) before a directory is made."""
    tasks = select_tasks(resolve_tasks(sources, n=config.n, seed=config.seed, params=config.params),
                         limit=config.limit, task_ids=config.task_ids)
    run_options = {key: value for key, value in {**config.options, "model": config.model,
                                                 "sub_model": config.sub_model}.items() if value is not None}
    if config.max_connections is not None:
        run_options["max_process_concurrency"] = config.max_connections
    settings = Settings.from_options(**run_options)  # bad options fail here, before anything runs
    if config.ray is not None:
        _ray_backend_class()
    direct_model = (config.baseline_model or settings.model) if config.baseline == "direct" else None
    scripted = any(is_scripted(name) for name in (settings.model, settings.sub_model or settings.model,
                                                  direct_model))
    spec = settings.sandbox_spec()
    if config.labels:
        spec = spec.model_copy(update={"labels": {**spec.labels, **config.labels}})
    wanted = [(task, epoch) for task in tasks for epoch in range(1, config.epochs + 1)]
    return _Plan(config, wanted, settings, run_options, spec, direct_model, scripted)


def _prepare_out(plan: _Plan) -> Path:
    """The output directory, made, and refused if it holds another run's results."""
    config = plan.config
    if config.replay is not None and not Path(config.replay).is_dir():
        raise EvalError(f"--replay {config.replay}: no such directory (record one with --record)")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "traces").mkdir(exist_ok=True)
    _check_manifest(out, {"model": plan.settings.model, "sub_model": plan.sub_model,
                          "baseline_model": plan.direct_model}, config.force)
    return out


def _ray_backend_class() -> type[RayBackend]:
    """The Ray backend's class, imported only when asked for (Ray is an optional extra)."""
    try:
        from .ray_backend import RayBackend
    except ImportError:
        raise EvalError('--ray needs Ray: pip install "rlm-sandbox[ray]" (SuiteConfig.ray)') from None
    return RayBackend


def _backend(plan: _Plan, jobs: int) -> Backend:
    """The backend the configuration names: a Ray cluster, or a warm pool here sized to the jobs."""
    config = plan.config
    if config.ray is not None:
        return _ray_backend_class()(address=config.ray, max_in_flight=config.concurrency)
    return LocalBackend(plan.spec, size=min(config.concurrency or DEFAULT_CONCURRENCY, max(1, jobs)))


class _SuiteRun:
    """Runs the jobs left on a backend, a slot each, retrying errors as configured; a provider
    error no retry can mend stops every job still running or waiting (``stopped`` says why)."""

    def __init__(self, plan: _Plan, backend: Backend, reporter: SuiteProgress, results: ResultsFile) -> None:
        self.plan, self.backend, self.reporter, self.results = plan, backend, reporter, results
        self.stopped: str | None = None
        self._running: list[asyncio.Task[TaskResult | None]] = []
        self._slots = asyncio.Semaphore(1)

    def job_for(self, task: Task, epoch: int) -> TaskJob:
        config, name = self.plan.config, f"{task.id}.e{epoch}.jsonl"
        return TaskJob(task=task, epoch=epoch, options=self.plan.run_options, spec=self.plan.spec,
                       trace_path=Path(config.out, "traces", name), trace_name=f"traces/{name}",
                       record=Path(config.record, name) if config.record is not None else None,
                       replay=Path(config.replay, name) if config.replay is not None else None,
                       baseline_model=self.plan.direct_model, scripted=self.plan.scripted)

    async def run(self, todo: list[tuple[Task, int]]) -> list[TaskResult]:
        """Every job's result (the stopped ones have none); each closes its sandbox before this returns."""
        try:
            await self.backend.start()
            # A backend with its own capacity (Ray: the cluster's slots) sets how many run at once.
            capacity = getattr(self.backend, "capacity", None)
            self._slots = asyncio.Semaphore(capacity or self.plan.config.concurrency or DEFAULT_CONCURRENCY)
            self._running.extend(asyncio.ensure_future(self._one(task, epoch)) for task, epoch in todo)
            await asyncio.wait(self._running)
            return [result for job in self._running if not job.cancelled() and (result := job.result()) is not None]
        finally:
            for job in self._running:  # on an interrupt: let each task close its sandbox before the pool goes
                job.cancel()
            if self._running:
                await asyncio.gather(*self._running, return_exceptions=True)
            await self.backend.close()

    async def _one(self, task: Task, epoch: int) -> TaskResult | None:
        async with self._slots:
            if self.stopped:
                return None
            self.reporter.begin()
            result = await _run_job(self.backend, self.job_for(task, epoch))
            for _ in range(self.plan.config.retry_on_error):
                if not result.errored or result.permanent:
                    break
                result = await _run_job(self.backend, self.job_for(task, epoch))
            self.results.append(result)
            self.reporter.done(result)
            if result.permanent and not self.stopped:
                self._stop(result)
            return result

    def _stop(self, result: TaskResult) -> None:
        self.stopped = (f"stopped after a provider error no retry can mend, in {result.task_id} e{result.epoch}: "
                        f"{clip(result.error or '', 300)}")
        for other in self._running:  # the rest would meet the same error: stop them now
            if other is not asyncio.current_task():
                other.cancel()


def _finish(plan: _Plan, done: dict[tuple[str, int], TaskResult], stopped: str | None,
            wall_time_s: float) -> SuiteSummary:
    """The summary, whether the build fails, and the reports."""
    config = plan.config
    results = [done[(task.id, epoch)] for task, epoch in plan.wanted if (task.id, epoch) in done]
    summary = summarise(results, model=plan.settings.model, sub_model=plan.sub_model, scripted=plan.scripted,
                        epochs=config.epochs, wall_time_s=round(wall_time_s, 3))
    if stopped:
        summary.stopped, summary.not_run = stopped, len(plan.wanted) - len(results)
    summary.exit_reasons = _exit_reasons(summary, results, config.min_score, config.fail_on_error)
    out, junit, html = Path(config.out), _optional_path(config.junit), _optional_path(config.html)
    summary.reports = {name: str(path) for name, path in report_paths(out, junit=junit, html=html).items()}
    write_reports(out, results, summary, junit=junit, html=html)
    return summary


def _optional_path(value: str | Path | None) -> Path | None:
    return None if value is None else Path(value)


async def arun_suite(tasks: Sequence[str | Path | Task] | str | Path, config: SuiteConfig, *,
                     backend: Backend | None = None, reporter: SuiteProgress | None = None) -> SuiteSummary:
    """The async twin of :func:`run_suite`."""
    plan = _plan([tasks] if isinstance(tasks, (str, Path)) else tasks, config)
    out = _prepare_out(plan)
    done = read_results(out)
    # A run a permanent provider error ended is run again too: the key or model was fixed since.
    todo = [(task, epoch) for task, epoch in plan.wanted
            if config.force or (task.id, epoch) not in done or done[(task.id, epoch)].permanent]
    reporter = reporter or SuiteProgress(enabled=config.progress, scripted=plan.scripted)
    reporter.start(len(todo), skipped=len(plan.wanted) - len(todo))
    suite = _SuiteRun(plan, backend or _backend(plan, len(todo)), reporter, ResultsFile(out))
    started = time.monotonic()
    try:
        if todo:
            done.update({result.key: result for result in await suite.run(todo)})
    finally:
        reporter.close()
    return _finish(plan, done, suite.stopped, time.monotonic() - started)


def run_suite(tasks: Sequence[str | Path | Task] | str | Path, config: SuiteConfig, *,
              backend: Backend | None = None, reporter: SuiteProgress | None = None) -> SuiteSummary:
    """Run an evaluation suite and return its :class:`SuiteSummary`.

    ``tasks``: task files, built-in generator names and :class:`Task` objects. ``config``: a
    :class:`SuiteConfig` (the models, ``out``, ``concurrency``, ``record``/``replay``, thresholds...).
    ``backend``: where jobs run, instead of the one ``config`` names (a warm local pool, or
    ``config.ray``). ``reporter``: a :class:`SuiteProgress` of your own instead of ``config.progress``'s."""
    return asyncio.run(arun_suite(tasks, config, backend=backend, reporter=reporter))
