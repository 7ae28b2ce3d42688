"""The RLM loop: ask the root model, run its code in the sandbox, repeat until FINAL.

The loop is written once, as async code: model calls use litellm's async API and
sandbox calls run on a one-thread executor of their own, so many runs share one event
loop and really overlap. ``RLM.run()`` drives the same coroutine on a background loop.
A run is self-contained (settings in, result out); it never touches Docker itself but
gets a Sandbox from a factory, so the provider is pluggable.
"""

from __future__ import annotations

import asyncio
import functools
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Protocol, TypeVar

from ..config import Settings
from ..errors import BudgetExceeded, LLMError
from ..events.trace import Listener, Trace, VerbosePrinter
from ..models.litellm_client import Completion, LLMClient
from ..models.runtime import load_litellm
from ..sandbox.base import Callbacks, Context, ExecResult, Sandbox
from . import prompts
from .answer_schema import AnswerSchema, schema_prompt, validate_answer
from .broker import CELL_EXCEPTIONS, Broker, BrokerSwitch, describe_tools
from .budget import Ledger
from .metering import Meter
from .parsing import FinalInText, parse_reply
from .result import AnswerSource, RLMResult, Status

T = TypeVar("T")

#: Makes the sandbox for a run: (context, callbacks, exceptions, settings) -> Sandbox.
SandboxFactory = Callable[[Context, Callbacks, tuple[str, ...], Settings], Sandbox]


class RunOwner(Protocol):
    """What a run reads from the ``RLM`` that started it (see :class:`rlm_sandbox.RLM`)."""

    settings: Settings
    tools: dict[str, Callable[..., Any]]
    answer_schema: AnswerSchema | None
    on_event: Listener | None
    sandbox_factory: SandboxFactory
    llm: LLMClient


def _check_query(query: Any) -> None:
    if not isinstance(query, str) or not query.strip():
        raise ValueError("query must be a non-empty string")


def prepare(rlm: RunOwner, meter: Meter | None = None) -> None:
    """What a run needs before its clock starts, done off the event loop: import litellm
    (seconds, once per process), refuse a cost limit that cannot be enforced, and load the
    tokenizers that reserving budget will use. Raises BudgetNotEnforceable."""
    load_litellm()
    settings = rlm.settings
    meter = meter or Meter(Ledger(settings.budget()), rlm.llm, settings)
    models = [settings.model, settings.sub_model or settings.model]
    meter.check_prices(models)
    meter.warm_up(models)


class _Run:
    """One execution of the loop at one depth. Holds the state a run must not share."""

    def __init__(self, rlm: RunOwner, query: str, context: Context, *, answer_schema: AnswerSchema | None = None,
                 ledger: Ledger | None = None, trace: Trace | None = None, depth: int = 0,
                 sandbox: Sandbox | None = None, switch: BrokerSwitch | None = None,
                 session_notes: str = "") -> None:
        self.rlm = rlm
        self.settings = settings = rlm.settings
        self.query, self.context, self.depth = query, context, depth
        self.answer_schema = answer_schema
        self.model = settings.model if depth == 0 else (settings.sub_model or settings.model)
        self._listeners: list[Listener] = [rlm.on_event] if rlm.on_event else []
        if settings.verbose:
            self._listeners.append(VerbosePrinter())
        self._owns_clock = trace is None and ledger is None
        self.trace = trace or Trace(self._listeners)
        self.ledger = ledger or Ledger(settings.budget())
        self.meter = Meter(self.ledger, rlm.llm, settings)
        self.answer_from: AnswerSource = "none"
        self.sandbox, self.switch, self.session_notes = sandbox, switch, session_notes
        self.messages: list[dict[str, Any]] = []
        self.iterations = 0
        self.nudges = 0
        self.parsed: Any = None
        self._io = ThreadPoolExecutor(1, thread_name_prefix="rlm-sandbox-io")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sandbox_started: asyncio.Future[Any] | None = None

    # -- the run ----------------------------------------------------------------------

    async def execute(self) -> RLMResult:
        self._loop = asyncio.get_running_loop()
        if self._owns_clock:  # the run starts after its setup: importing litellm is not run time
            await self._loop.run_in_executor(None, prepare, self.rlm, self.meter)
            self.ledger.restart_clock()
            self.trace = Trace(self._listeners)
        started = self._loop.time()
        settings = self.settings
        self.trace.emit("start", query=self.query, model=self.model, sub_model=settings.sub_model or settings.model)
        broker = Broker(meter=self.meter, trace=self.trace, sub_model=settings.sub_model or settings.model,
                        loop=self._loop, depth=self.depth, tools=self.rlm.tools, child_runner=self._run_child)
        owned = self.sandbox is None
        sandbox = self.sandbox or self.rlm.sandbox_factory(self.context, broker.callbacks(), CELL_EXCEPTIONS,
                                                           settings)
        if self.switch is not None:
            self.switch.current = broker
        answer, status, error = "", "error", None
        # The container starts while the root model writes its first reply: the prompt
        # only needs the host's description of the context, not the sandbox.
        self._sandbox_started = asyncio.ensure_future(self._call(sandbox.start)) if owned else None
        try:
            self.messages = [{"role": "system", "content": self._system_prompt()},
                             {"role": "user", "content": self.session_notes + prompts.first_user_message(self.query)}]
            answer, status, error = await self._loop_until_final(sandbox)
        finally:
            if self.switch is not None:
                self.switch.current = None
            broker.close()
            if self._sandbox_started is not None:  # the run ended before it needed the sandbox
                if self._sandbox_started.done() and not self._sandbox_started.cancelled():
                    self._sandbox_started.exception()  # retrieved: a failed start no longer matters
                self._sandbox_started.cancel()
            if owned:  # not on the I/O thread: a running cell may occupy it; close() cuts it short
                await asyncio.shield(self._loop.run_in_executor(None, sandbox.close))
            self._io.shutdown(wait=False)
        if status == "completed":
            self.answer_from = "final"
        elif not answer:
            self.answer_from = "none"
        elif self.answer_from == "none":
            self.answer_from = "last_reply"
        self.trace.emit("final", status=status, answer=answer, answer_from=self.answer_from, error=error)
        return self._result(answer, status, error, self._loop.time() - started)

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking sandbox call on this run's own I/O thread."""
        assert self._loop is not None
        return await self._loop.run_in_executor(self._io, functools.partial(function, *args, **kwargs))

    def _system_prompt(self) -> str:
        s = self.settings
        return prompts.system_prompt(
            context=self.context, offload_threshold=s.offload_threshold if s.offload else None,
            preview_chars=s.preview_chars, max_output_chars=s.max_output_chars,
            tools=describe_tools(self.rlm.tools),
            answer_schema=schema_prompt(self.answer_schema) if self.answer_schema else None)

    async def _loop_until_final(self, sandbox: Sandbox) -> tuple[str, Status, str | None]:
        for _ in range(self.ledger.budget.max_iterations):
            self.iterations += 1
            self.ledger.start_iteration()
            self.trace.emit("iteration", iteration=self.iterations, model=self.model)
            try:
                self.ledger.check_spend()
                reply = (await self._ask_root(self.messages)).text
            except LLMError as exc:
                return self._partial_answer(), "error", str(exc)
            except BudgetExceeded as exc:
                return await self._out_of_budget(sandbox, exc)
            self.messages.append({"role": "assistant", "content": reply})
            if self._sandbox_started is not None:
                await self._sandbox_started  # raises if the sandbox could not start
                self._sandbox_started = None
            answer = await self._handle_reply(sandbox, reply)
            if answer is not None:
                return answer, "completed", None
            if self.ledger.exhausted is not None:
                return await self._out_of_budget(sandbox, self.ledger.exhausted)
        return await self._last_chance(sandbox, "max_iterations")

    async def _handle_reply(self, sandbox: Sandbox, reply: str) -> str | None:
        """Run the reply's code; return the answer if the reply finished the task."""
        parsed = parse_reply(reply)
        observations: list[str] = []
        failed = False
        blocks = parsed.code_blocks
        final: FinalInText | None = parsed.final
        for index, code in enumerate(blocks):
            result = await self._run_cell(sandbox, code, index)
            shown = prompts.format_cell(index, len(blocks), result, self.settings.max_output_chars)
            observations.append(shown)
            self.trace.emit("cell", iteration=self.iterations, index=index, code=code, shown=shown,
                            output=result.stdout, stderr=result.stderr,
                            error=str(result.error) if result.error else None,
                            duration_s=round(result.duration_s, 4),
                            offloaded=result.offloaded.name if result.offloaded else None,
                            restarted=result.restarted, timed_out=result.timed_out)
            if result.error is not None:
                failed = True
                if index + 1 < len(blocks):
                    observations.append(prompts.skipped_blocks(len(blocks) - index - 1))
                break
            if result.final is not None:
                final = FinalInText("VALUE", result.final.answer)
                break
        if final is not None and failed:
            observations.append(prompts.final_rejected_after_error())
        elif final is not None:
            answer, problem = await self._resolve_final(sandbox, final)
            if answer is not None:
                return answer
            observations.append(problem or "")
        elif not blocks:
            self.nudges += 1
            self.trace.emit("nudge", count=self.nudges)
            observations.append(prompts.no_code_nudge())
        self.messages.append({"role": "user", "content": "\n\n".join(observations)})
        return None

    async def _run_cell(self, sandbox: Sandbox, code: str, index: int) -> ExecResult:
        settings = self.settings
        timeout = settings.cell_timeout_s
        remaining = self.ledger.remaining_time_s()
        if remaining is not None:  # the wall-time budget interrupts a running cell
            timeout = max(min(timeout, remaining), 0.05)
        result = await self._call(sandbox.exec, code, timeout=timeout,
                                  offload_threshold=settings.offload_threshold if settings.offload else None,
                                  preview_chars=settings.preview_chars)
        self.ledger.count_code_execution()
        return result

    async def _resolve_final(self, sandbox: Sandbox, final: FinalInText) -> tuple[str | None, str | None]:
        """The answer a FINAL names (checked against the schema), or why it is refused."""
        text: str | None = final.value
        if final.kind == "FINAL_VAR" or (final.kind == "FINAL" and final.value.isidentifier()):
            # FINAL(x) where x is a variable almost always means the variable.
            result = await self._call(sandbox.exec, f"FINAL_VAR({final.value!r})")
            if result.final is not None:
                text = result.final.answer
            elif final.kind == "FINAL_VAR":
                return None, prompts.missing_final_var(final.value)
        if self.answer_schema is not None and text is not None:
            parsed, problem = validate_answer(self.answer_schema, text)
            if problem is not None:
                self.trace.emit("schema_rejected", problem=problem)
                return None, problem
            self.parsed = parsed
        return text, None

    async def _ask_root(self, messages: list[dict[str, Any]]) -> Completion:
        assert self._loop is not None
        role = "root" if self.depth == 0 else "sub"
        max_tokens = self.settings.max_tokens
        reservation = await self._loop.run_in_executor(
            None, self.meter.reserve, "root model call" if self.depth == 0 else "child root call",
            self.model, messages, max_tokens)
        remaining = self.ledger.remaining_time_s()
        call = self.rlm.llm.acomplete(self.model, messages, max_tokens=max_tokens,
                                      price=self.meter.custom_price(self.model))
        try:
            if remaining is not None and remaining <= 0:
                call.close()  # never started: nothing to await, nothing to warn about
                raise asyncio.TimeoutError
            completion = await asyncio.wait_for(call, timeout=remaining)
        except asyncio.TimeoutError:
            self.meter.settle_failure(reservation, role, asyncio.TimeoutError())
            self.ledger.check_time()  # raises: the wall-time budget ran out mid-call
            raise LLMError("the root model did not answer within the wall-time budget", model=self.model,
                           transient=True) from None
        except BaseException as exc:
            self.meter.settle_failure(reservation, role, exc)
            raise
        self.meter.settle(reservation, role, completion)
        self.trace.emit("model_reply", model=self.model, text=completion.text, input_tokens=completion.input_tokens,
                        output_tokens=completion.output_tokens, duration_s=round(completion.duration_s, 4))
        return completion

    def _run_child(self, query: str, context: Any, trace: Trace) -> RLMResult:
        """Called by the broker on a callback thread: run a child RLM on our event loop."""
        assert self._loop is not None
        child = _Run(self.rlm, query, context, ledger=self.ledger, trace=trace, depth=self.depth + 1)
        return asyncio.run_coroutine_threadsafe(child.execute(), self._loop).result()

    # -- ending without FINAL -------------------------------------------------------------

    async def _last_chance(self, sandbox: Sandbox, status: Status,
                           error: str | None = None) -> tuple[str, Status, str | None]:
        """One more root call asking for the best answer from what is known."""
        reason = f"The run's budget is used up ({error})." if error else "You have used every iteration."
        messages = [*self.messages, {"role": "user", "content": prompts.last_chance(reason)}]
        try:
            reply = (await self._ask_root(messages)).text
        except (LLMError, BudgetExceeded) as exc:  # _ask_root turns a timeout into one of these
            return self._partial_answer(), status, error or str(exc)
        self.messages = [*messages, {"role": "assistant", "content": reply}]
        self.answer_from = "answer_now"  # never "final": the run did not finish by itself
        parsed = parse_reply(reply)
        if parsed.final is not None:
            answer, problem = await self._resolve_final(sandbox, parsed.final)
            if answer is not None:
                return answer, status, error
            error = error or problem
        return reply.strip(), status, error

    async def _out_of_budget(self, sandbox: Sandbox, exc: BudgetExceeded) -> tuple[str, Status, str | None]:
        status: Status = "timeout" if exc.limit == "max_wall_time_s" else "budget_exhausted"
        self.trace.emit("budget_exhausted", limit=exc.limit, allowed=exc.allowed, used=exc.used)
        if exc.limit == "max_sub_calls":  # the root model itself may still be affordable
            try:
                self.ledger.check_spend()
                return await self._last_chance(sandbox, status, str(exc))
            except BudgetExceeded:
                pass
        return self._partial_answer(), status, str(exc)

    def _partial_answer(self) -> str:
        """The last thing the model said: the best answer available without another call."""
        for message in reversed(self.messages):
            if message["role"] == "assistant" and message["content"].strip():
                return message["content"].strip()
        return ""

    def _result(self, answer: str, status: Status, error: str | None, duration_s: float) -> RLMResult:
        ledger = self.ledger
        return RLMResult(
            answer=answer, iterations=self.iterations, total_input_tokens=ledger.input_tokens,
            total_output_tokens=ledger.output_tokens, code_executions=ledger.code_executions,
            sub_calls=ledger.sub_calls, history=list(self.messages), status=status, cost_usd=ledger.cost_usd,
            usage=ledger.usage, duration_s=duration_s, trajectory=self.trace.events, error=error,
            parsed=self.parsed, answer_from=self.answer_from)
