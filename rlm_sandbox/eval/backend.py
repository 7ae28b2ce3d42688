"""Where a task runs: a backend takes a self-contained job and gives back its result.

A :class:`TaskJob` is plain, picklable data (the task, the run's options, the sandbox spec,
paths), and :func:`execute_job` needs nothing else: it builds the model client (recording or
replaying if asked), the ``RLM``, runs the task through the public API, runs the direct
baseline, and scores. :class:`LocalBackend` runs jobs in this process on a warm
:class:`~rlm_sandbox.SandboxPool` (a fresh sandbox per task, never reused); a distributed
backend (Ray, issue 12) implements the same two methods and calls ``execute_job`` on its
workers, each with its own pool.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from .. import RLM, SandboxPool, SandboxSpec
from ..events import JsonlWriter
from ..models import ModelClient
from ..models.replay import taped
from ..redaction import redact
from ..sandbox.spec import SandboxFactory
from .baseline import ask_direct
from .oracle import ORACLE_MODEL, ensure_oracle
from .permanent import PermanentErrorWatch
from .results import LIMIT_STATUSES, BaselineResult, TaskResult
from .scorers import ScorerError, score
from .tasks import Task

__all__ = ["Backend", "LocalBackend", "TaskJob", "crashed_result", "execute_job"]


@dataclass(frozen=True)
class TaskJob:
    """Everything one task's run needs, as data: what runs where, and where its files go."""

    task: Task
    epoch: int
    options: dict[str, Any]
    spec: SandboxSpec
    trace_path: Path
    trace_name: str
    record: Path | None = None
    replay: Path | None = None
    baseline_model: str | None = None
    scripted: bool = False


def _wrap(job: TaskJob, inner: ModelClient) -> ModelClient:
    """The run's model client, recording into (afresh) or replaying from the task's own cassette."""
    return taped(inner, record=job.record, replay=job.replay, append=False, label=f"{job.task.id} epoch {job.epoch}")


def _score(task: Task, answer: str) -> tuple[float, str | None]:
    try:
        return score(task.scorer.name, answer, task.expected, task.scorer.options), None
    except ScorerError as exc:
        return 0.0, f"scoring failed: {exc}"
    except Exception as exc:  # noqa: BLE001 - a user's scorer (module:function) may raise anything: the task fails, not the suite
        return 0.0, f"scoring failed: the scorer {task.scorer.name} raised {type(exc).__name__}: {exc}"


def _common(job: TaskJob) -> dict[str, Any]:
    task, options = job.task, job.options
    return dict(task_id=task.id, epoch=job.epoch, source=task.source, query=task.query, expected=task.expected,
                pass_threshold=task.pass_threshold, scorer=task.scorer.name, model=options["model"],
                sub_model=options.get("sub_model") or options["model"], scripted=job.scripted,
                length=task.metadata.get("tokens"), records=task.metadata.get("records"), metadata=task.metadata,
                trajectory=job.trace_name)


def crashed_result(job: TaskJob, error: str, duration_s: float = 0.0, *, permanent: bool = False) -> TaskResult:
    """The result of a job whose run raised or whose worker died: recorded, never dropped."""
    return TaskResult(**_common(job), status="crashed", error=redact(error), duration_s=duration_s,
                      permanent=permanent)


async def execute_job(job: TaskJob, sandbox_factory: SandboxFactory | None = None,
                      wrap_client: Callable[[ModelClient], ModelClient] | None = None) -> TaskResult:
    """Run one task and score it; never raises for the task's own failures (they are results:
    whatever the run, the scorer or the baseline raises becomes a ``crashed`` result with the
    reason). Only cancellation and interrupts pass through.

    ``wrap_client`` wraps the run's model client (a distributed backend's shared rate limit)."""
    started = time.perf_counter()
    watch: PermanentErrorWatch | None = None
    try:
        if ORACLE_MODEL in (job.options.get("model"), job.options.get("sub_model"), job.baseline_model) \
                and job.replay is None:
            ensure_oracle()
        writer = JsonlWriter(job.trace_path)
        try:
            context = await asyncio.to_thread(job.task.load_context)
            rlm = RLM(**{**job.options, **job.task.budget}, on_event=writer, sandbox_factory=sandbox_factory)
            rlm.llm = watch = PermanentErrorWatch(_wrap(job, wrap_client(rlm.llm) if wrap_client else rlm.llm))
            run = await rlm.arun(job.task.query, context)
        finally:
            writer.close()
        return await _scored(job, run, context, watch)
    except Exception as exc:  # noqa: BLE001 - the sandbox, a file, a cassette, a bug: the task crashed, the suite goes on
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return crashed_result(job, reason, time.perf_counter() - started,
                              permanent=watch is not None and watch.seen is not None)


async def _scored(job: TaskJob, run: Any, context: Any, client: PermanentErrorWatch) -> TaskResult:
    """The run's result, scored, with the direct baseline's if one was asked for."""
    task = job.task
    value, problem = _score(task, run.answer)
    result = TaskResult(
        **_common(job), answer=run.answer, answer_from=run.answer_from, status=run.status,
        limit_hit=run.status in LIMIT_STATUSES, error=run.error or problem, score=value,
        passed=value >= task.pass_threshold and not problem, input_tokens=run.total_input_tokens,
        output_tokens=run.total_output_tokens, cached_input_tokens=run.total_cached_input_tokens,
        cost_usd=run.cost_usd, duration_s=run.duration_s,
        iterations=run.iterations, sub_calls=run.sub_calls,
        context_chars=len(context) if isinstance(context, (str, bytes, list)) else None)
    if job.baseline_model is not None:
        direct = await ask_direct(client, job.baseline_model, context, task.query)
        direct_score, direct_problem = _score(task, direct.answer) if not direct.error else (0.0, None)
        result.baseline = BaselineResult(model=job.baseline_model, score=direct_score,
                                         passed=direct_score >= task.pass_threshold and not direct_problem,
                                         **direct.model_dump())
    result.permanent = client.seen is not None
    if client.seen is not None and not result.error:
        result.error = redact(client.seen)  # a provider message may quote part of a key
    return result


class Backend(Protocol):
    """Runs jobs: ``start`` once, then ``run`` awaited for many jobs at once, then ``close``."""

    async def start(self) -> None: ...

    async def run(self, job: TaskJob) -> TaskResult: ...

    async def close(self) -> None: ...


class LocalBackend:
    """Jobs in this process, each in a fresh sandbox from a warm pool of ``size``."""

    def __init__(self, spec: SandboxSpec, size: int) -> None:
        self.spec, self.size = spec, max(1, size)
        self._pool: SandboxPool | None = None

    async def start(self) -> None:
        if self._pool is None:  # warming starts containers: off the loop
            self._pool = await asyncio.to_thread(SandboxPool, self.size, spec=self.spec)

    async def run(self, job: TaskJob) -> TaskResult:
        if self._pool is None:
            raise RuntimeError("LocalBackend.start() was not awaited before run()")
        return await execute_job(job, sandbox_factory=self._pool.sandbox_factory)

    async def close(self) -> None:
        if self._pool is not None:
            await asyncio.to_thread(self._pool.close)
            self._pool = None
