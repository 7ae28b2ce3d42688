"""The RLM loop: ask the root model, run its code in the sandbox, repeat until FINAL.

The loop is written once, as async code: model calls use litellm's async API and
sandbox calls run on a one-thread executor of their own, so many runs share one event
loop and really overlap. ``RLM.run()`` drives the same coroutine on a background loop.
A run is self-contained (settings in, result out); it never touches Docker itself but
gets a Sandbox from a factory, so the provider is pluggable. Everything it does is
emitted as typed events (``rlm_sandbox.events``), which are also its trajectory.
"""

from __future__ import annotations

import asyncio
import functools
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Protocol, TypeVar

from ..config import Settings
from ..errors import BudgetExceeded, LLMContextWindowExceeded, LLMError, RLMSandboxError, SandboxError
from ..events import types as ev
from ..events.printer import VerbosePrinter
from ..events.stream import EventLog, Listener, RunRecorder
from ..models.base import Completion, ModelClient
from ..models.litellm_client import model_window
from ..models.runtime import load_litellm
from ..redaction import current_redactor
from ..sandbox.base import Context, ExecResult, Sandbox
from ..sandbox.host import Host
from ..sandbox.spec import SandboxFactory
from . import prompts
from .answer_schema import AnswerSchema, schema_prompt, validate_answer
from .broker import CELL_EXCEPTIONS, Broker, BrokerSwitch, describe_tools
from .budget import Ledger
from .compaction import ContextWindow, DoesNotFit, History, iteration_note
from .metering import Meter
from .model_call import ModelCall
from .parsing import FinalInText, parse_reply
from .progress import StallWatch
from .recording import build_reporter, context_shape, masker
from .result import AnswerSource, RLMResult, Status

T = TypeVar("T")



async def _through_cancel(future: asyncio.Future[Any]) -> bool:
    """Wait for ``future`` to end even if the waiting task is cancelled meanwhile; returns True
    if it was (the caller passes the cancel on once its cleanup is done). Its error is raised."""
    cancelled = False
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            cancelled = True
        except Exception:  # noqa: BLE001 - raised by result() below
            break
    future.result()
    return cancelled


class RunOwner(Protocol):
    """What a run reads from the ``RLM`` that started it (see :class:`rlm_sandbox.RLM`)."""

    settings: Settings
    tools: dict[str, Callable[..., Any]]
    answer_schema: AnswerSchema | None
    on_event: Listener | None
    sandbox_factory: SandboxFactory
    llm: ModelClient


def prepare(rlm: RunOwner, meter: Meter | None = None) -> None:
    """What a run needs before its clock starts, done off the event loop: import litellm
    (seconds, once per process), refuse a cost limit that cannot be enforced, and load the
    tokenizers that reserving budget will use. Raises BudgetNotEnforceable."""
    load_litellm()
    _quiet_unsent_requests()
    settings = rlm.settings
    meter = meter or Meter(Ledger(settings.budget()), rlm.llm, settings)
    models = [settings.model, settings.sub_model or settings.model]
    meter.check_prices(models)
    meter.warm_up(models)
    if settings.window("root") or model_window(settings.model):  # root requests will be measured
        rlm.llm.count_tokens(settings.model, text="warm up")


def _quiet_unsent_requests() -> None:
    """litellm's ``acompletion`` makes a provider's request coroutine on a worker thread; a
    call cancelled meanwhile (Ctrl-C, a wall-time budget, a cancelled ``arun``) drops that
    coroutine unstarted, so nothing was sent, and Python prints "RuntimeWarning: coroutine
    'OpenAIChatCompletion.acompletion' was never awaited". That warning says nothing wrong
    happened, only where: it is silenced for litellm's request coroutines alone (idempotent)."""
    warnings.filterwarnings("ignore", message=r"coroutine '\w+\.(acompletion|async_completion)' was never awaited",
                            category=RuntimeWarning)


def new_event_log(rlm: RunOwner) -> EventLog:
    """The event stream of a root run: the caller's listener, then ``verbose`` progress;
    secrets masked before any event is built."""
    listeners: list[Listener] = [rlm.on_event] if rlm.on_event else []
    if rlm.settings.verbose:
        listeners.append(VerbosePrinter())
    return EventLog(listeners, mask=masker(current_redactor()))


class _Run:
    """One execution of the loop at one depth. Holds the state a run must not share.

    A root run (no ``parent``) owns the ledger and the event log; a child run (``rlm_query``,
    made by :meth:`_run_child`) shares its parent's ledger, writes to a child recorder of its
    events, runs one level deeper on the sub-model and has no setup of its own."""

    def __init__(self, rlm: RunOwner, query: str, context: Context, *, answer_schema: AnswerSchema | None = None,
                 sandbox: Sandbox | None = None, switch: BrokerSwitch | None = None,
                 session_notes: str = "", parent: _Run | None = None,
                 placement: dict[str, Any] | None = None) -> None:
        self.rlm = rlm
        self.settings = settings = rlm.settings
        self.query, self.context = query, context
        self.answer_schema = answer_schema
        self.is_root = parent is None
        self.depth: int = 0 if parent is None else parent.depth + 1
        self.model = settings.model if self.depth == 0 else (settings.sub_model or settings.model)
        self.role: ev.Role = "root" if self.depth == 0 else "sub"  # child runs' roots are the sub-model
        self.events: RunRecorder = new_event_log(rlm).recorder() if parent is None else parent.events.child()
        self.ledger: Ledger = Ledger(settings.budget()) if parent is None else parent.ledger
        self.meter = Meter(self.ledger, rlm.llm, settings)
        self.placement = placement or {}  # where a child run was started: iteration, cell, batch index
        self.answer_from: AnswerSource = "none"
        self.sandbox, self.switch, self.session_notes = sandbox, switch, session_notes
        self.history: History | None = None  # the root conversation, made when the run starts
        self._sent: list[dict[str, Any]] = []  # the messages of this run's previous root request
        self.iterations = 0
        self.nudges = 0
        self.stalls = StallWatch(settings.stall_repeats, settings.stall_idle_replies)
        self.window = ContextWindow(self.model, settings.window(self.role), model_window)
        self._max_tokens_sent: int | None = None  # the reply limit of the latest root call
        self.parsed: Any = None
        self.broker: Broker | None = None
        self._io = ThreadPoolExecutor(1, thread_name_prefix="rlm-sandbox-io")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._sandbox_started: asyncio.Future[Any] | None = None

    # -- the run ----------------------------------------------------------------------

    async def execute(self) -> RLMResult:
        self._loop = asyncio.get_running_loop()
        if self.is_root:  # the run starts after its setup: importing litellm is not run time
            try:
                await self._loop.run_in_executor(None, prepare, self.rlm, self.meter)
            except asyncio.CancelledError:  # cut short before it began: the trace still says so
                self.events.emit(ev.RunInterrupted, iterations=0)
                raise
            self.ledger.restart_clock()
            self.events.log.restart_clock()
        started = self._loop.time()
        settings = self.settings
        self.events.emit(ev.RunStart, query=self.query, model=self.model,
                         sub_model=settings.sub_model or settings.model, tools=sorted(self.rlm.tools),
                         settings=settings.model_dump(mode="json") if self.depth == 0 else {},
                         **context_shape(self.context))
        broker = self.broker = Broker(meter=self.meter, events=self.events,
                                      sub_model=settings.sub_model or settings.model, loop=self._loop,
                                      depth=self.depth, tools=self.rlm.tools, child_runner=self._run_child)
        owned = self.sandbox is None
        sandbox = self.sandbox or self.rlm.sandbox_factory(settings.sandbox_spec(), self.context,
                                                           Host(broker.callbacks(), CELL_EXCEPTIONS))
        if owned:  # building the image (first use of a kernel version) shows as events
            sandbox.on_progress = build_reporter(self.events)
        if self.switch is not None:
            self.switch.current = broker
        status: Status
        answer, status, error = "", "error", None
        # The container starts while the first prompt is made and measured; the first model
        # call waits for it (_sandbox_ready), so a run that cannot run pays for nothing.
        self._sandbox_started = asyncio.ensure_future(self._start(sandbox)) if owned else None
        interrupted, failure = False, None
        try:
            self.history = History(self._first_messages(), functools.partial(self.rlm.llm.count_tokens, self.model))
            answer, status, error = await self._loop_until_final(sandbox)
        except asyncio.CancelledError:
            interrupted = True
        except Exception as exc:  # noqa: BLE001 - raised again below, once the trace has its end
            failure = exc
            answer, error = self._partial_answer(), f"{type(exc).__name__}: {exc}"
        finally:
            interrupted = await self._wind_down(sandbox, owned) or interrupted
        if interrupted:  # the trace says so, instead of just stopping; a cancelled run has no final
            self.events.emit(ev.RunInterrupted, iterations=self.iterations)
            raise asyncio.CancelledError
        if status == "completed":
            self.answer_from = "final"
        elif not answer:
            self.answer_from = "none"
        elif self.answer_from == "none":
            self.answer_from = "last_reply"
        duration = self._loop.time() - started
        ledger = self.ledger
        self.events.emit(ev.Final, status=status, answer=answer, answer_from=self.answer_from, error=error,
                         iterations=self.iterations, input_tokens=ledger.input_tokens,
                         cached_input_tokens=ledger.cached_input_tokens, output_tokens=ledger.output_tokens,
                         cost_usd=ledger.cost_usd, duration_s=round(duration, 4))
        result = self._result(answer, status, error, duration)
        if failure is not None:  # e.g. the sandbox could not start: raised, with the run's result
            if isinstance(failure, RLMSandboxError):
                failure.result = result
            raise failure
        return result

    async def _wind_down(self, sandbox: Sandbox, owned: bool) -> bool:
        """End the run's callbacks (waiting for those cut short to record it), its sandbox's start
        and, if the sandbox is the run's own, the sandbox. Returns True when the run was
        cancelled meanwhile: each step was still waited for, so nothing of the run outlives it."""
        assert self._loop is not None and self.broker is not None
        if self.switch is not None:
            self.switch.current = None
        self.broker.close()
        cancelled = await _through_cancel(asyncio.ensure_future(self.broker.drain()))
        if self._sandbox_started is not None:  # the run ended before it needed the sandbox
            if self._sandbox_started.done() and not self._sandbox_started.cancelled():
                self._sandbox_started.exception()  # retrieved: a failed start no longer matters
            self._sandbox_started.cancel()  # close() below waits for a start in progress
        if owned:  # not on the I/O thread: a running cell may occupy it; close() cuts it short
            closing = time.monotonic()
            try:
                closed = self._loop.run_in_executor(None, sandbox.close)
            except RuntimeError:  # "cannot schedule new futures after interpreter shutdown"
                sandbox.close()  # the program is exiting: here, then, blocking the loop
            else:
                cancelled = await _through_cancel(closed) or cancelled
            self.events.emit(ev.SandboxClose, duration_s=round(time.monotonic() - closing, 4))
        self._io.shutdown(wait=False)
        return cancelled

    async def _start(self, sandbox: Sandbox) -> None:
        """Start the sandbox on the I/O thread and say how it went."""
        began = time.monotonic()
        shape = {"provider": self.settings.sandbox, "image": getattr(sandbox, "image", None),
                 "runtime": getattr(sandbox, "runtime", None), "transport": getattr(sandbox, "transport", None)}
        try:
            await self._call(sandbox.start)
        except Exception as exc:
            self.events.emit(ev.SandboxStart, **shape, duration_s=round(time.monotonic() - began, 4),
                             error=f"{type(exc).__name__}: {exc}")
            raise
        self.events.emit(ev.SandboxStart, **shape, duration_s=round(time.monotonic() - began, 4))

    async def _sandbox_ready(self) -> None:
        """Wait for the sandbox this run is starting; raises if it cannot start. Called before
        the first model request is sent: a run that cannot run must not pay for a call (a
        request cancelled once sent may be billed all the same)."""
        if self._sandbox_started is not None:
            await self._sandbox_started
            self._sandbox_started = None

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking sandbox call on this run's own I/O thread."""
        assert self._loop is not None
        return await self._loop.run_in_executor(self._io, functools.partial(function, *args, **kwargs))

    def _first_messages(self) -> list[dict[str, Any]]:
        """The system prompt and the first user message, or (``supports_system_message=False``)
        one user message holding both, for chat templates that drop system messages."""
        system = self._system_prompt()
        first = self.session_notes + prompts.first_user_message(self.query, self.context)
        if self.settings.supports_system_message:
            return [{"role": "system", "content": system}, {"role": "user", "content": first}]
        return [{"role": "user", "content": prompts.folded_system_prompt(system, first)}]

    def _system_prompt(self) -> str:
        """The same for every run with these settings, tools and schema (children's too), so
        providers' prefix caches share it; the task-specific text is in the first user message."""
        s, known = self.settings, self.window.known()
        return prompts.system_prompt(
            offload_threshold=s.offload_threshold if s.offload else None,
            preview_chars=s.preview_chars, max_output_chars=s.max_output_chars,
            tools=describe_tools(self.rlm.tools),
            answer_schema=schema_prompt(self.answer_schema) if self.answer_schema else None,
            long_form=known is not None and known[0] >= prompts.LONG_FORM_MIN_WINDOW)

    async def _loop_until_final(self, sandbox: Sandbox) -> tuple[str, Status, str | None]:
        assert self.history is not None
        for _ in range(self.ledger.budget.max_iterations):
            self.iterations += 1
            self.ledger.start_iteration()
            self.events.emit(ev.Iteration, iteration=self.iterations, model=self.model)
            try:
                self.ledger.check_spend()
                completion = await self._ask_root(sandbox, "step", self.iterations)
            except LLMError as exc:
                return self._partial_answer(), "error", str(exc)
            except BudgetExceeded as exc:
                return await self._out_of_budget(sandbox, exc)
            self.history.say("assistant", completion.text)
            await self._sandbox_ready()
            answer = await self._handle_reply(sandbox, completion.text, completion.finish_reason)
            if answer is not None:
                return answer, "completed", None
            if self.ledger.exhausted is not None:
                return await self._out_of_budget(sandbox, self.ledger.exhausted)
            stall = self.stalls.stalled()
            if stall is not None:
                self.events.emit(ev.Stalled, rule=stall.rule, count=stall.count, setting=stall.setting)
                return await self._last_chance(sandbox, "stalled", StallWatch.explain(stall),
                                               reason=prompts.stalled_reason(stall.rule, stall.count))
        return await self._last_chance(sandbox, "max_iterations")

    async def _handle_reply(self, sandbox: Sandbox, reply: str, finish_reason: str | None = None) -> str | None:
        """Run the reply's code; return the answer if the reply finished the task."""
        assert self.history is not None
        parsed = parse_reply(reply)
        cut_off = finish_reason == "length"
        observations: list[str] = []
        cells: list[tuple[str, str]] = []
        failed = False
        blocks = parsed.code_blocks
        final: FinalInText | None = parsed.final
        clipped = False  # a FINAL the kernel clipped is never passed off as the whole answer
        for index, code in enumerate(blocks):
            result = await self._run_cell(sandbox, code, index)
            shown = prompts.format_cell(index, len(blocks), result, self.settings.max_output_chars)
            observations.append(shown)
            cells.append((code, shown))
            self._record_cell(index, code, shown, result)
            if result.error is not None:
                failed = True
                if index + 1 < len(blocks):
                    observations.append(prompts.skipped_blocks(len(blocks) - index - 1))
                break
            if result.final is not None:
                final = FinalInText("VALUE", result.final.answer)
                clipped = result.final.truncated
                break
        if cut_off or parsed.unclosed_block is not None:
            observations.append(prompts.reply_cut(cut_off=cut_off, max_tokens=self._max_tokens_sent,
                                                  unclosed=parsed.unclosed_block is not None, blocks_run=len(cells)))
            self.events.emit(ev.ReplyCut, iteration=self.iterations, finish_reason=finish_reason,
                             max_tokens=self._max_tokens_sent, unclosed_block=parsed.unclosed_block is not None,
                             blocks_run=len(cells))
        acted = bool(cells) or final is not None
        if final is not None and final.kind != "VALUE" and cut_off and not final.closed:
            observations.append(self._reject_final("cut_off", prompts.final_cut_off()))
        elif final is not None and failed:
            observations.append(self._reject_final("code_failed", prompts.final_rejected_after_error()))
        elif final is not None and clipped:
            observations.append(self._reject_final("too_long", prompts.final_too_long(len(final.value))))
        elif final is not None:
            answer, problem = await self._resolve_final(sandbox, final)
            if answer is not None:
                return answer
            observations.append(problem or "")
        elif not blocks and not cut_off and parsed.unclosed_block is None:
            self.nudges += 1
            self.events.emit(ev.Nudge, count=self.nudges)
            observations.append(prompts.no_code_nudge())
        feedback = "\n\n".join(observations)
        self.history.say("user", feedback)
        self.history.noted(self.iterations, iteration_note(self.iterations, reply, cells))
        self.stalls.turn(reply, feedback, acted)
        return None

    def _reject_final(self, reason: str, problem: str) -> str:
        self.events.emit(ev.FinalRejected, iteration=self.iterations, reason=reason, problem=problem)
        return problem

    def _record_cell(self, index: int, code: str, shown: str, result: ExecResult) -> None:
        error = result.error
        self.events.emit(ev.Cell, iteration=self.iterations, index=index, code=code, shown=shown,
                         stdout=result.stdout, stdout_chars=result.stdout_chars or len(result.stdout),
                         stderr=result.stderr, offloaded=[result.offloaded.name] if result.offloaded else [],
                         error=str(error) if error else None, error_type=error.type if error else None,
                         duration_s=round(result.duration_s, 4), restarted=result.restarted,
                         timed_out=result.timed_out, called_final=result.final is not None)
        if result.restarted:
            self.events.emit(ev.SandboxRestart, reason=str(error) if error else "the kernel was replaced",
                             iteration=self.iterations, cell=index)

    async def _run_cell(self, sandbox: Sandbox, code: str, index: int) -> ExecResult:
        settings = self.settings
        timeout = settings.cell_timeout_s
        remaining = self.ledger.remaining_time_s()
        if remaining is not None:  # the wall-time budget interrupts a running cell
            timeout = max(min(timeout, remaining), 0.05)
        if self.broker is not None:
            self.broker.placement = {"iteration": self.iterations, "cell": index}
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
            try:
                found = await self._call(sandbox.final_var, final.value)
            except SandboxError:  # the kernel could not say (it was restarted): no such variable now
                found = None
            if found is not None and found.truncated:
                return None, self._reject_final("too_long", prompts.final_too_long(len(found.answer)))
            if found is not None:
                text = found.answer
            elif final.kind == "FINAL_VAR":
                return None, self._reject_final("no_such_variable", prompts.missing_final_var(final.value))
        if self.answer_schema is not None and text is not None:
            parsed, problem = validate_answer(self.answer_schema, text)
            if problem is not None:
                self.events.emit(ev.SchemaRejected, problem=problem)
                return None, problem
            self.parsed = parsed
        return text, None

    async def _ask_root(self, sandbox: Sandbox, purpose: str, iteration: int) -> Completion:
        """One root-model call, kept inside the model's context window (the history is folded
        when it would not fit; a refusal as too long teaches the window and is retried)."""
        assert self.history is not None
        overflow: LLMContextWindowExceeded | None = None
        for _ in range(3):
            try:
                messages, max_tokens = await self._fitted(sandbox, iteration, overflow)
            except DoesNotFit as exc:
                raise self.window.does_not_fit(exc, overflow) from overflow
            try:
                completion = await self._send(messages, purpose, iteration, max_tokens)
            except LLMContextWindowExceeded as exc:
                overflow = exc
                self.window.learn(str(exc), self.history.tokens(messages))
                continue
            self.history.calibrate(messages, completion.input_tokens)
            return completion
        assert overflow is not None
        raise self.window.does_not_fit(None, overflow)

    async def _fitted(self, sandbox: Sandbox, iteration: int,
                      overflow: LLMContextWindowExceeded | None) -> tuple[list[dict[str, Any]], int]:
        """What to send and the reply's limit: the history folded to fit the window, when known."""
        assert self.history is not None and self._loop is not None
        history, max_tokens = self.history, self.settings.max_tokens
        limit = self.window.prompt_limit(max_tokens, self.settings.compact_at)
        if limit is None:
            return history.messages, max_tokens
        if await self._loop.run_in_executor(None, history.tokens) > limit:
            variables = await self._variables(sandbox)
            done = await self._loop.run_in_executor(None, history.fit, limit, variables)
            known = self.window.known()
            if done is not None and known is not None:  # known: the limit came from it
                tokens, source = known
                self.events.emit(ev.Compaction, iteration=iteration, reason="overflow" if overflow else "threshold",
                                 window=tokens, window_source=source, limit=limit, tokens_before=done.tokens_before,
                                 tokens_after=done.tokens_after, folded=done.folded, kept=done.kept,
                                 clipped=done.clipped)
        return history.messages, self.window.reply_limit(history.tokens(), max_tokens)

    async def _variables(self, sandbox: Sandbox) -> str | None:
        """What the REPL holds (for a digest), or None when it cannot be asked."""
        if self._sandbox_started is not None:
            return None  # not started yet: nothing was run, nothing to list
        try:
            return await self._call(sandbox.memory_status)
        except Exception:  # noqa: BLE001 - a digest without the variables is still a digest
            return None

    async def _send(self, messages: list[dict[str, Any]], purpose: str, iteration: int,
                    max_tokens: int) -> Completion:
        """One root-model request (a :class:`ModelCall`), bounded by the run's wall time; its
        ``model_request`` carries only what is new since this run's previous root request."""
        await self._sandbox_ready()  # before anything is paid for
        self._max_tokens_sent = max_tokens
        call = ModelCall(self.meter, self.events, role=self.role, model=self.model, messages=messages,
                         max_tokens=max_tokens, what="root model call" if self.depth == 0 else "child root call",
                         conversation=True)
        await call.reserve()
        base = 0
        while base < min(len(messages), len(self._sent)) and messages[base] is self._sent[base]:
            base += 1
        self._sent = list(messages)
        call.announce(purpose=purpose, iteration=iteration, base=base)
        return await call.send(within_wall_time=True)

    async def _run_child(self, query: str, context: Any, placement: dict[str, Any]) -> RLMResult:
        """A child RLM (``rlm_query``) on this run's event loop, sharing its ledger and events."""
        child = _Run(self.rlm, query, context, parent=self, placement=placement)
        self.events.emit(ev.ChildRunStart, child_run_id=child.events.run_id, query=query, **placement)
        began = time.monotonic()
        result = await child.execute()
        self.events.emit(ev.ChildRunEnd, child_run_id=child.events.run_id, status=result.status,
                         answer=result.answer, error=result.error, duration_s=round(time.monotonic() - began, 4))
        return result

    # -- ending without FINAL -------------------------------------------------------------

    async def _last_chance(self, sandbox: Sandbox, status: Status, error: str | None = None, *,
                           reason: str | None = None) -> tuple[str, Status, str | None]:
        """One more root call asking for the best answer from what is known. It is a turn of its
        own (an ``iteration`` event with purpose ``answer_now``), not counted in ``iterations``.
        The request goes in the last user message, so roles keep alternating."""
        assert self.history is not None
        reason = reason or (f"The run's budget is used up ({error})." if error else "You have used every iteration.")
        turn = self.iterations + 1
        self.events.emit(ev.Iteration, iteration=turn, model=self.model, purpose="answer_now")
        self.history.append_to_last(prompts.last_chance(reason))
        try:
            reply = (await self._ask_root(sandbox, "answer_now", turn)).text
        except (LLMError, BudgetExceeded) as exc:  # _ask_root turns a timeout into one of these
            return self._partial_answer(), status, (f"{error}; the answer-now call failed too: {exc}" if error
                                                    else str(exc))
        self.history.say("assistant", reply)
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
        self.events.emit(ev.BudgetExhausted, limit=exc.limit, allowed=exc.allowed, used=exc.used,
                         budget=self.ledger.status())
        if exc.limit == "max_sub_calls":  # the root model itself may still be affordable
            try:
                self.ledger.check_spend()
                return await self._last_chance(sandbox, status, str(exc))
            except BudgetExceeded:
                pass
        return self._partial_answer(), status, str(exc)

    def _partial_answer(self) -> str:
        """The last thing the model said: the best answer available without another call."""
        for message in reversed(self.history.transcript if self.history else []):
            if message["role"] == "assistant" and message["content"].strip():
                return message["content"].strip()
        return ""

    def _result(self, answer: str, status: Status, error: str | None, duration_s: float) -> RLMResult:
        ledger = self.ledger
        return RLMResult(
            answer=answer, iterations=self.iterations, total_input_tokens=ledger.input_tokens,
            total_output_tokens=ledger.output_tokens, code_executions=ledger.code_executions,
            sub_calls=ledger.sub_calls, history=list(self.history.transcript if self.history else []), status=status,
            cost_usd=ledger.cost_usd,
            usage=ledger.usage, duration_s=duration_s, trajectory=list(self.events.log.events), error=error,
            parsed=self.parsed, answer_from=self.answer_from)
