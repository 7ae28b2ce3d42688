"""One request's run: checked before it queues, run through the public API, cancelled with its client.

A request is validated whole (model, messages, ``rlm`` options, settings) before it takes
a place in the queue, so a bad one is a 400 at once. Its run is an asyncio task of its
own: when the client goes away the task is cancelled, and ``RLM.arun`` then closes the
run's container and ends the trace with ``run_interrupted``; the server keeps the task
until that cleanup is over.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import RLM, SandboxPool
from ..sandbox import Host, Sandbox, SandboxSpec
from ..chat import ChatMappingError, messages_to_run
from ..errors import BudgetNotEnforceable, ContextTypeError, LLMError, RLMSandboxError, SettingsError
from .admission import Admission
from .config import ServerConfig
from .errors import APIError, bad_request
from .options import root_model, run_options, settings_error
from .traces import TraceStore, new_request_id

#: Receives each progress-worthy event of a run, on whatever thread emitted it.
EventSink = Callable[[Any], None]


@dataclass
class RunPlan:
    """A checked request, ready to run."""

    request_id: str
    created: int
    model: str  # as the client named it: rlm/<model>
    rlm: Any  # the RLM (public API) configured for this request
    query: str
    context: Any
    stream: bool
    include_usage: bool


class Runner:
    """Holds what runs share: the server's settings, the warm pool, admission, the traces."""

    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.base = RLM(**config.options)  # bad settings stop the server here, before it listens
        self.admission = Admission(config.max_concurrent, config.max_queue)
        self.traces = TraceStore(config.trace_dir)
        self.tasks: set[asyncio.Task[Any]] = set()
        self.pool: Any = None

    def start(self) -> None:
        """Warm the pool (docker sandboxes) and import litellm now, not on the first request."""
        from ..models.runtime import load_litellm

        size = self.config.max_concurrent if self.config.pool is None else self.config.pool
        if size and self.base.settings.sandbox == "docker":
            self.pool = SandboxPool(size=size, spec=self.base.settings.sandbox_spec())
        load_litellm()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()

    def models(self) -> list[str]:
        settings = self.base.settings
        names = [settings.model, settings.sub_model or settings.model, *settings.allowed_sub_models]
        return ["rlm", *dict.fromkeys(f"rlm/{name}" for name in names)]

    def plan(self, body: Any) -> RunPlan:
        """The run a request asks for, or a 400 naming what is wrong with it."""
        if not isinstance(body, dict):
            raise bad_request("the body must be a JSON object with 'model' and 'messages'", None)
        model = root_model(body.get("model"), self.base.settings.model)
        try:
            chat = messages_to_run(body.get("messages"))
        except ChatMappingError as exc:
            raise bad_request(str(exc), exc.param) from None
        overrides, context, given = run_options(body.get("rlm"), self.base.settings)
        if given and chat.context is not None:
            raise bad_request("the context is given twice: as messages before the question and as rlm.context; "
                              "give it one way", "rlm.context")
        if "temperature" in body and body["temperature"] is not None and "temperature" not in overrides:
            overrides["temperature"] = body["temperature"]
        rlm = self._rlm(model, overrides)
        stream_options = body.get("stream_options") or {}
        return RunPlan(request_id=new_request_id(), created=int(time.time()), model=body["model"], rlm=rlm,
                       query=chat.query, context=context if given else chat.context, stream=bool(body.get("stream")),
                       include_usage=bool(isinstance(stream_options, dict) and stream_options.get("include_usage")))

    def _rlm(self, model: str, overrides: dict[str, Any]) -> Any:
        """An RLM for one request: the server's, with the request's (already validated) settings.

        A copy of the server's RLM with new settings costs microseconds; building one reads the
        environment and ``.env`` again (about 16 ms). Only a request that changes how its
        model client is made (``temperature``) pays that."""
        if "temperature" in overrides:
            try:
                rlm = RLM(**{**self.config.options, **overrides, "model": model})
            except SettingsError as exc:
                raise settings_error(exc, overrides) from None
        else:
            rlm = copy.copy(self.base)
            rlm.settings = self.base.settings.model_copy(update={**overrides, "model": model})
        if self.pool is not None:
            rlm.sandbox_factory = self._sandbox
        return rlm

    def _sandbox(self, spec: SandboxSpec, context: Any, host: Host) -> Sandbox:
        """A warm sandbox when the pool has one idle; otherwise a new, unstarted one, which the
        run starts on its own I/O thread. ``pool.take`` would wait for a start in progress (or
        start one) right here, on the server's event loop, stalling every other request's
        stream for as long as a container takes to start. Every take happens on that one
        loop, so the pool cannot empty between the check and the take."""
        if self.pool is not None and self.pool.idle:
            return self.pool.sandbox_factory(spec, context, host)
        return spec.create(context, host)

    def launch(self, plan: RunPlan, sink: EventSink | None = None) -> asyncio.Task[Any]:
        """Queue and run ``plan`` as a task (a 429 now if the queue is full)."""
        ticket = self.admission.ticket()
        task = asyncio.create_task(self._run(plan, ticket, sink), name=f"rlm-serve-{plan.request_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    async def _run(self, plan: RunPlan, ticket: Any, sink: EventSink | None) -> Any:
        writer = self.traces.writer(plan.request_id)
        listeners = [listener for listener in (writer, sink) if listener is not None]

        def on_event(event: Any) -> None:
            for listener in listeners:
                listener(event)

        plan.rlm.on_event = on_event
        try:
            async with ticket:
                began = time.monotonic()
                try:
                    return await plan.rlm.arun(plan.query, plan.context)
                finally:
                    self.admission.finished(time.monotonic() - began)
        except (SettingsError, BudgetNotEnforceable, ContextTypeError) as exc:
            raise bad_request(str(exc), "rlm.context" if isinstance(exc, ContextTypeError) else None) from None
        except LLMError as exc:
            raise APIError(502, f"the model failed: {exc}", code="upstream_error") from None
        except RLMSandboxError as exc:
            raise APIError(503, f"the sandbox failed: {exc}; the server's operator can run `rlm-sandbox doctor`",
                           code="sandbox_error") from None
        finally:
            ticket.close()  # a run cancelled before it queued gives its place back too
            if writer is not None:
                writer.close()

    def trace_id(self, plan: RunPlan) -> str | None:
        return plan.request_id if self.traces.directory is not None else None


async def until_disconnected(receive: Callable[[], Any]) -> None:
    """Return when the client has gone (the request's body has been read already)."""
    while True:
        message = await receive()
        if message.get("type") == "http.disconnect":
            return
