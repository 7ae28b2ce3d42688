"""``run_suite``: tasks in, scored results and reports out.

Tasks (task files, built-in generators, or Task objects) are checked whole first; then each
(task, epoch) not already in the output directory runs as a self-contained job on a backend
(local by default: a warm pool, a fresh sandbox per task), at most ``concurrency`` at a
time. Every finished task is appended to ``results.jsonl`` at once, so a suite cut short
resumes where it stopped. At the end come ``summary.json``, ``report.md``, JUnit XML and the
HTML report; the summary says whether the build should fail (``--min-score``,
``--fail-on-error``: by default any task that ended in error fails it). Whatever one task does,
it becomes a result (``crashed`` with the reason, if nothing else) and the suite goes on, except
after a provider error no retry can mend (a bad key, an unknown model): then the tasks left are
stopped at once and the summary says so (``stopped``).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Sequence

from .. import Settings
from .backend import Backend, LocalBackend, TaskJob, crashed_result
from .generators import GENERATORS
from .oracle import is_scripted
from .progress import SuiteProgress
from .reports import clip, report_paths, write_reports
from .results import ResultsFile, TaskResult, read_results
from .summary import SuiteSummary, summarise
from .tasks import Task, generate_tasks, load_tasks

__all__ = ["EvalError", "arun_suite", "check_thresholds", "run_suite", "select_tasks"]

MANIFEST = "run.json"


class EvalError(ValueError):
    """The suite cannot run as asked (its inputs, options or output directory)."""


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
    seen: set[str] = set()
    duplicates = sorted({task.id for task in tasks if task.id in seen or seen.add(task.id)})  # type: ignore[func-returns-value]  # add() is None: falls through
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
    if limit is None:
        return tasks
    text = str(limit).strip()
    try:
        if "-" in text:
            first, last = (int(part) for part in text.split("-", 1))
            if not 1 <= first <= last:
                raise ValueError
            return tasks[first - 1:last]
        count = int(text)
        if count < 1:
            raise ValueError
        return tasks[:count]
    except ValueError:
        raise EvalError(f"--limit {limit}: give a count N (>= 1) or a range A-B (1 <= A <= B)") from None


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
            changed = ", ".join(f"{k}={old.get(k)!r}" for k in differing)
            raise EvalError(f"{out} holds results of another run ({changed}); "
                            "use another --out, or --force to run every task again")
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


def check_thresholds(min_score: float | None, fail_on_error: bool | float | None) -> None:
    """Refuse thresholds that cannot mean anything, before anything runs."""
    if min_score is not None and not (isinstance(min_score, (int, float)) and 0 <= min_score <= 1):
        raise EvalError(f"--min-score {min_score}: give a mean score from 0 to 1")
    if fail_on_error is None or isinstance(fail_on_error, bool):
        return
    if not isinstance(fail_on_error, (int, float)) or fail_on_error < 0 or \
            (fail_on_error > 1 and float(fail_on_error) != int(fail_on_error)):
        raise EvalError(f"--fail-on-error {fail_on_error}: give a share of the runs from 0 to 1 (0.1: up to 10% may "
                        "end in error) or a whole count above 1 (5: up to 5 runs may)")


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
    except Exception as exc:  # noqa: BLE001 - whatever a backend raises is the task's crash, never the suite's
        return crashed_result(job, f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


async def arun_suite(sources: Sequence[str | Path | Task] | str | Path, *, model: str, out: str | Path,
                     sub_model: str | None = None, n: int = 10, seed: int = 0, params: dict[str, Any] | None = None,
                     limit: int | str | None = None, task_ids: Sequence[str] | None = None, epochs: int = 1,
                     concurrency: int = 4, max_connections: int | None = None, retry_on_error: int = 0,
                     record: str | Path | None = None, replay: str | Path | None = None,
                     baseline: str | None = None, baseline_model: str | None = None, force: bool = False,
                     min_score: float | None = None, fail_on_error: bool | float | None = None,
                     junit: str | Path | None = None, html: str | Path | None = None,
                     options: dict[str, Any] | None = None, labels: dict[str, str] | None = None,
                     progress: SuiteProgress | bool = True, backend: Backend | None = None) -> SuiteSummary:
    """The async twin of :func:`run_suite`."""
    if isinstance(sources, (str, Path)):
        sources = [sources]
    check_thresholds(min_score, fail_on_error)
    if epochs < 1 or concurrency < 1 or retry_on_error < 0:
        raise EvalError("--epochs and --concurrency must be at least 1, --retry-on-error at least 0")
    if record is not None and replay is not None:
        raise EvalError("give --record or --replay, not both")
    if baseline not in (None, "direct"):
        raise EvalError(f"--baseline {baseline}: the only baseline is 'direct'")
    tasks = select_tasks(resolve_tasks(sources, n=n, seed=seed, params=params), limit=limit, task_ids=task_ids)
    run_options = {key: value for key, value in {**(options or {}), "model": model, "sub_model": sub_model}.items()
                   if value is not None}
    if max_connections is not None:
        run_options["max_process_concurrency"] = max_connections
    settings = Settings.from_options(**run_options)  # bad options fail here, before anything runs
    sub = settings.sub_model or settings.model
    direct_model = (baseline_model or settings.model) if baseline == "direct" else None
    scripted = any(is_scripted(name) for name in (settings.model, sub, direct_model))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "traces").mkdir(exist_ok=True)
    _check_manifest(out, {"model": settings.model, "sub_model": sub, "baseline_model": direct_model}, force)
    if replay is not None and not Path(replay).is_dir():
        raise EvalError(f"--replay {replay}: no such directory (record one with --record)")
    done = read_results(out)
    wanted = [(task, epoch) for task in tasks for epoch in range(1, epochs + 1)]
    # A run a permanent provider error ended is run again too: the key or model was fixed since.
    todo = [(task, epoch) for task, epoch in wanted
            if force or (task.id, epoch) not in done or done[(task.id, epoch)].permanent]
    spec = settings.sandbox_spec()
    if labels:
        spec = spec.model_copy(update={"labels": {**spec.labels, **labels}})
    reporter = progress if isinstance(progress, SuiteProgress) else SuiteProgress(enabled=bool(progress),
                                                                                   scripted=scripted)
    reporter.start(len(todo), skipped=len(wanted) - len(todo))
    results_file = ResultsFile(out)
    backend = backend or LocalBackend(spec, size=min(concurrency, max(1, len(todo))))
    slots = asyncio.Semaphore(concurrency)  # a backend with its own capacity (Ray: the cluster's slots) sets it
    started = time.monotonic()

    def job_for(task: Task, epoch: int) -> TaskJob:
        name = f"{task.id}.e{epoch}.jsonl"
        return TaskJob(task=task, epoch=epoch, options=run_options, spec=spec, trace_path=out / "traces" / name,
                       trace_name=f"traces/{name}", record=Path(record) / name if record is not None else None,
                       replay=Path(replay) / name if replay is not None else None, baseline_model=direct_model,
                       scripted=scripted)

    stopped: list[str] = []  # the permanent provider error that stopped the suite, once seen
    running: list[asyncio.Task[TaskResult | None]] = []

    async def one(task: Task, epoch: int) -> TaskResult | None:
        async with slots:
            if stopped:
                return None
            reporter.begin()
            result = await _run_job(backend, job_for(task, epoch))
            for _ in range(retry_on_error):
                if not result.errored or result.permanent:
                    break
                result = await _run_job(backend, job_for(task, epoch))
            results_file.append(result)
            reporter.done(result)
            if result.permanent and not stopped:
                stopped.append(f"stopped after a provider error no retry can mend, in {result.task_id} "
                               f"e{result.epoch}: {clip(result.error or '', 300)}")
                for other in running:  # the rest would meet the same error: stop them now
                    if other is not asyncio.current_task():
                        other.cancel()
            return result

    try:
        if todo:
            await backend.start()
            slots = asyncio.Semaphore(getattr(backend, "capacity", None) or concurrency)
            running.extend(asyncio.ensure_future(one(task, epoch)) for task, epoch in todo)
            await asyncio.wait(running)
            new = [job.result() for job in running if not job.cancelled()]
            done.update({result.key: result for result in new if result is not None})
    finally:
        for job in running:  # on an interrupt: let each task close its sandbox before the pool goes
            job.cancel()
        if running:
            await asyncio.gather(*running, return_exceptions=True)
        reporter.close()
        await backend.close()
    results = [done[(task.id, epoch)] for task, epoch in wanted if (task.id, epoch) in done]
    summary = summarise(results, model=settings.model, sub_model=sub, scripted=scripted, epochs=epochs,
                        wall_time_s=round(time.monotonic() - started, 3))
    if stopped:
        summary.stopped, summary.not_run = stopped[0], len(wanted) - len(results)
    summary.exit_reasons = _exit_reasons(summary, results, min_score, fail_on_error)
    summary.reports = {name: str(path) for name, path in report_paths(out, junit=Path(junit) if junit else None,
                                                                       html=Path(html) if html else None).items()}
    write_reports(out, results, summary, junit=Path(junit) if junit else None, html=Path(html) if html else None)
    return summary


def run_suite(sources: Sequence[str | Path | Task] | str | Path, **kwargs: Any) -> SuiteSummary:
    """Run an evaluation suite and return its :class:`SuiteSummary` (see :func:`arun_suite` for
    the options: ``model``, ``out``, ``concurrency``, ``record``/``replay``, ``baseline``, ...)."""
    return asyncio.run(arun_suite(sources, **kwargs))

