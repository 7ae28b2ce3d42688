"""The public API: ``RLM`` (settings for many runs), ``run``/``arun`` (one-shot), ``Session``.

A run itself lives in :mod:`rlm_sandbox.core.loop`; this module only gathers what a run
needs (settings, model client, tools, sandbox factory) from the caller's arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .config import Settings
from .core.answer_schema import AnswerSchema
from .core.broker import check_tools
from .core.budget import Budget
from .core.loop import _check_query, _Run
from .core.result import RLMResult
from .core.session import Session
from .core.sync_bridge import run_sync
from .errors import RLMSandboxError
from .events.stream import Listener
from .models.base import ModelClient
from .models.litellm_client import LLMClient
from .models.replay import RecordingClient, ReplayClient, cassette_path
from .provider_env import load_provider_env
from .redaction import redact
from .sandbox.base import Context, Sandbox
from .sandbox.cleanup import install_signal_handlers
from .sandbox.host import Host
from .sandbox.spec import SandboxFactory, SandboxSpec, check_factory

__all__ = ["RLM", "Session", "arun", "default_sandbox_factory", "run"]


def default_sandbox_factory(spec: SandboxSpec, context: Context, host: Host) -> Sandbox:
    """The run's sandbox, made from its spec (``settings.sandbox_spec()``) by the provider it names."""
    return spec.create(context, host)


class RLM:
    """A recursive language model whose code runs in a sandbox.

    ``RLM(model, sub_model, max_iterations, max_output_chars, verbose, **options)``:
    options are any field of :class:`Settings` (sandbox, image, runtime, memory,
    offload_threshold, budgets, api_base, ...); left as None they come from
    ``RLM_SANDBOX_*`` variables, ``.env`` or the defaults. ``budget`` may give the limits as
    one :class:`Budget` instead. ``tools`` are host functions
    the code may call; ``answer_schema`` a pydantic model the answer must match. ``llm`` is any
    :class:`~rlm_sandbox.models.ModelClient`; ``record=DIR`` keeps every model request and reply
    in ``DIR/cassette.jsonl``, and ``replay=DIR`` answers them from it with no network and no key
    (a request it does not hold fails, naming the closest recorded one).
    """

    def __init__(self, model: str | None = None, sub_model: str | None = None,
                 max_iterations: int | None = None, max_output_chars: int | None = None,
                 verbose: bool | None = None, *, budget: Budget | None = None,
                 tools: dict[str, Callable[..., Any]] | None = None,
                 answer_schema: AnswerSchema | None = None, on_event: Listener | None = None,
                 sandbox_factory: SandboxFactory | None = None, llm: ModelClient | None = None,
                 record: str | Path | None = None, replay: str | Path | None = None,
                 **options: Any) -> None:
        options = {"model": model, "sub_model": sub_model, "max_iterations": max_iterations,
                   "max_output_chars": max_output_chars, "verbose": verbose, **options}
        if budget is not None:  # a Budget object is the same limits as keyword options
            given = {name for name, value in options.items() if value is not None}
            clashing = sorted(budget.model_fields_set & given)
            if clashing:
                raise TypeError(f"{', '.join(clashing)} given both in budget= and as options; give each once")
            options.update(budget.model_dump(exclude_unset=True))
        self.settings = Settings.from_options(**options)
        load_provider_env()  # a key in .env works as if exported (host only; never in a container)
        install_signal_handlers()  # here, on the caller's thread: runs start sandboxes on others
        self.tools = dict(tools or {})
        check_tools(self.tools)
        self.answer_schema = answer_schema
        self.on_event = on_event
        self.sandbox_factory = check_factory(sandbox_factory) if sandbox_factory else default_sandbox_factory
        self.llm: ModelClient = llm or LLMClient(max_retries=self.settings.max_retries,
                                                 timeout_s=self.settings.request_timeout_s,
                                                 completion_kwargs=self.settings.completion_kwargs())
        if record is not None and replay is not None:
            raise TypeError("give record= or replay=, not both: a run either records its model traffic or replays it")
        if record is not None:  # every model call is kept in DIR/cassette.jsonl
            self.llm = RecordingClient(self.llm, cassette_path(record))
        elif replay is not None:  # every model call is answered from DIR/cassette.jsonl: no network, no key
            self.llm = ReplayClient(cassette_path(replay), inner=self.llm)

    def run(self, query: str, context: Context = None, *, answer_schema: AnswerSchema | None = None) -> RLMResult:
        """Answer ``query`` about ``context``. Model and budget trouble never raise: the
        result's ``status`` and ``error`` say what happened. A sandbox that cannot start raises
        before any model call (the exception's ``result`` is the run's). Ctrl-C cancels the run
        and returns once its sandbox is closed (a second Ctrl-C stops waiting)."""
        return run_sync(self.arun(query, context, answer_schema=answer_schema))

    async def arun(self, query: str, context: Context = None, *,
                   answer_schema: AnswerSchema | None = None) -> RLMResult:
        """The async twin of :meth:`run`; many may run at once in one event loop. Cancelling its
        task is an interrupt: the cancel completes once the run's sandboxes are closed, and its
        trace ends with ``run_interrupted``."""
        _check_query(query)
        misses = list(getattr(self.llm, "misses", ()))
        try:
            result = await _Run(self, query, context, answer_schema=answer_schema or self.answer_schema).execute()
        except RLMSandboxError as exc:  # e.g. the sandbox could not start; the result it carries is masked too
            if exc.result is not None and exc.result.error:
                exc.result.error = redact(exc.result.error)
            raise
        missed = [miss for miss in getattr(self.llm, "misses", ()) if miss not in misses]
        if missed:  # a replay that lacked a request fails loudly, even where the loop caught it
            result.status, result.error = "error", str(missed[0])
        if result.error:
            result.error = redact(result.error)
        return result

    def session(self, context: Context = None) -> Session:
        """One sandbox kept across several questions: ``with rlm.session(ctx) as s: s.ask(q)``."""
        return Session(self, context)


def run(query: str, context: Context = None, model: str | None = None, max_iterations: int | None = None,
        max_output_chars: int | None = None, verbose: bool | None = None, **options: Any) -> RLMResult:
    """One-shot: ``RLM(model, ...).run(query, context)``."""
    return RLM(model=model, max_iterations=max_iterations, max_output_chars=max_output_chars,
               verbose=verbose, **options).run(query, context)


async def arun(query: str, context: Context = None, model: str | None = None, max_iterations: int | None = None,
               max_output_chars: int | None = None, verbose: bool | None = None, **options: Any) -> RLMResult:
    """One-shot async: ``await RLM(model, ...).arun(query, context)``."""
    return await RLM(model=model, max_iterations=max_iterations, max_output_chars=max_output_chars,
                     verbose=verbose, **options).arun(query, context)
