"""The public API: ``RLM`` (settings for many runs), ``run``/``arun`` (one-shot), ``Session``.

A run itself lives in :mod:`rlm_sandbox.core.loop`; this module only gathers what a run
needs (settings, model client, tools, sandbox factory) from the caller's arguments.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Unpack

from .config import Settings
from .core.answer_schema import AnswerSchema
from .core.broker import check_tools
from .core.budget import Budget
from .core.result import RLMResult
from .core.run_once import run_once
from .core.session import Session
from .core.sync_bridge import run_sync
from .events.stream import Listener
from .models.base import ModelClient
from .models.litellm_client import LLMClient
from .models.replay import cassette_path, taped
from .options import RLMOptions, SettingsAfterModel
from .provider_env import load_provider_env
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

    ``RLM(model, **options)``: every option is a keyword, any field of :class:`Settings`
    (sub_model, max_iterations, max_output_chars, verbose, sandbox, image, runtime, memory,
    offload_threshold, budgets, api_base, ...; :class:`~rlm_sandbox.options.SettingsAfterModel`
    lists them with their types); left as None they come from ``RLM_SANDBOX_*`` variables,
    ``.env`` or the defaults. ``budget`` may give the limits as one :class:`Budget` instead.
    ``tools`` are host functions the code may call; ``answer_schema`` a pydantic model the answer
    must match. ``llm`` is any :class:`~rlm_sandbox.ModelClient`; ``record=DIR`` keeps every model
    request and reply in ``DIR/cassette.jsonl``, and ``replay=DIR`` answers them from it with no
    network and no key (a request it does not hold fails, naming the closest recorded one).

    Building one copies the provider variables of ``./.env`` (``OPENAI_API_KEY``,
    ``AWS_REGION_NAME``, ``AZURE_API_VERSION``, ...) into this process's ``os.environ``, where
    not already exported. That is deliberate: litellm reads hundreds of provider-specific variables
    from the environment at call time and has no per-call way to pass them all, so a ``.env``
    works exactly as if exported only this way. An exported value always wins, and no sandbox
    ever sees them (its environment is built from scratch). docs/DECISIONS.md (issue 18, part 2).
    """

    def __init__(self, model: str | None = None, *, budget: Budget | None = None,
                 tools: dict[str, Callable[..., Any]] | None = None,
                 answer_schema: AnswerSchema | None = None, on_event: Listener | None = None,
                 sandbox_factory: SandboxFactory | None = None, llm: ModelClient | None = None,
                 record: str | Path | None = None, replay: str | Path | None = None,
                 **options: Unpack[SettingsAfterModel]) -> None:
        given: dict[str, Any] = {"model": model, **options}
        if budget is not None:  # a Budget object is the same limits as keyword options
            clashing = sorted(budget.model_fields_set & {name for name, value in given.items() if value is not None})
            if clashing:
                raise TypeError(f"{', '.join(clashing)} given both in budget= and as options; give each once")
            given.update(budget.model_dump(exclude_unset=True))
        self.settings = Settings.from_options(**given)
        load_provider_env()  # a key in .env works as if exported: see the class's docstring for why
        install_signal_handlers()  # here, on the caller's thread: runs start sandboxes on others
        self.tools = dict(tools or {})
        check_tools(self.tools)
        self.answer_schema = answer_schema
        self.on_event = on_event
        self.sandbox_factory: SandboxFactory = (check_factory(sandbox_factory) if sandbox_factory
                                                else default_sandbox_factory)
        self.llm: ModelClient = taped(
            llm or LLMClient(max_retries=self.settings.max_retries, timeout_s=self.settings.request_timeout_s,
                             completion_kwargs=self.settings.completion_kwargs()),
            record=None if record is None else cassette_path(record),
            replay=None if replay is None else cassette_path(replay))

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
        return await run_once(self, query, context, answer_schema=answer_schema)

    def session(self, context: Context = None) -> Session:
        """One sandbox kept across several questions: ``with rlm.session(ctx) as s: s.ask(q)``."""
        return Session(self, context)


def run(query: str, context: Context = None, model: str | None = None, **options: Unpack[RLMOptions]) -> RLMResult:
    """One-shot: ``RLM(model, **options).run(query, context)``; every option is a keyword."""
    return RLM(model, **options).run(query, context)


async def arun(query: str, context: Context = None, model: str | None = None,
               **options: Unpack[RLMOptions]) -> RLMResult:
    """One-shot async: ``await RLM(model, **options).arun(query, context)``; every option is a keyword."""
    return await RLM(model, **options).arun(query, context)
