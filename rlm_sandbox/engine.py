"""The RLM loop: ask the root model, run its code in the sandbox, repeat until FINAL.

A run is self-contained: settings in, result out, no process-global state. It owns
one sandbox, one ledger (shared with its sub-calls) and one trajectory. The engine
never touches Docker itself: it gets a Sandbox from a factory.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from . import prompts
from .broker import CELL_EXCEPTIONS, Broker
from .budget import Ledger
from .config import Settings
from .errors import BudgetExceeded, LLMError
from .llm import Completion, LLMClient
from .parsing import FinalInText, parse_reply
from .result import RLMResult, Status
from .sandbox.base import Callbacks, Context, ExecResult, Sandbox
from .trace import Listener, Trace, VerbosePrinter

#: Makes the sandbox for a run: (context, callbacks, exceptions, settings) -> Sandbox.
SandboxFactory = Callable[[Context, Callbacks, tuple[str, ...], Settings], Sandbox]


def default_sandbox_factory(context: Context, callbacks: Callbacks, exceptions: tuple[str, ...],
                            settings: Settings) -> Sandbox:
    from .sandbox import DockerSandbox, LocalSandbox

    if settings.sandbox == "local":
        return LocalSandbox(context, limits=settings.limits(), callbacks=callbacks, exceptions=exceptions)
    return DockerSandbox(context, image=settings.image, runtime=settings.runtime, limits=settings.limits(),
                         callbacks=callbacks, exceptions=exceptions)


class RLM:
    """A recursive language model whose code runs in a sandbox.

    ``RLM(model, sub_model, max_iterations, max_output_chars, verbose, **options)``:
    options are any field of :class:`Settings` (sandbox, image, runtime, memory,
    offload_threshold, preview_chars, budgets, api_base, ...). Arguments left as None
    come from ``RLM_SANDBOX_*`` environment variables, ``.env``, or the defaults.
    """

    def __init__(self, model: str | None = None, sub_model: str | None = None,
                 max_iterations: int | None = None, max_output_chars: int | None = None,
                 verbose: bool | None = None, *, on_event: Listener | None = None,
                 sandbox_factory: SandboxFactory | None = None, llm: LLMClient | None = None,
                 **options: Any) -> None:
        self.settings = Settings.from_options(model=model, sub_model=sub_model, max_iterations=max_iterations,
                                              max_output_chars=max_output_chars, verbose=verbose, **options)
        self.on_event = on_event
        self.sandbox_factory = sandbox_factory or default_sandbox_factory
        self.llm = llm or LLMClient(max_retries=self.settings.max_retries,
                                    timeout_s=self.settings.request_timeout_s,
                                    completion_kwargs=self.settings.completion_kwargs())

    def run(self, query: str, context: Context = None) -> RLMResult:
        """Answer ``query`` about ``context``. Never raises for model or budget trouble:
        the result's ``status`` and ``error`` say what happened."""
        if not isinstance(query, str) or not query.strip():
            raise ValueError("query must be a non-empty string")
        return _Run(self, query, context).execute()


def run(query: str, context: Context = None, model: str | None = None, max_iterations: int | None = None,
        max_output_chars: int | None = None, verbose: bool | None = None, **options: Any) -> RLMResult:
    """One-shot: ``RLM(model, ...).run(query, context)``."""
    return RLM(model=model, max_iterations=max_iterations, max_output_chars=max_output_chars,
               verbose=verbose, **options).run(query, context)


class _Run:
    """One execution of the loop. Holds the state that a run must not share."""

    def __init__(self, rlm: RLM, query: str, context: Context) -> None:
        self.settings = settings = rlm.settings
        self.rlm = rlm
        self.query = query
        self.context = context
        listeners = [rlm.on_event] if rlm.on_event else []
        if settings.verbose:
            listeners.append(VerbosePrinter())
        self.trace = Trace(listeners)
        self.ledger = Ledger(settings.budget())
        self.broker = Broker(llm=rlm.llm, ledger=self.ledger, trace=self.trace,
                             sub_model=settings.sub_model or settings.model)
        self.messages: list[dict[str, Any]] = []
        self.nudges = 0

    # -- the run ----------------------------------------------------------------------

    def execute(self) -> RLMResult:
        started = time.monotonic()
        self.trace.emit("start", query=self.query, model=self.settings.model,
                        sub_model=self.settings.sub_model or self.settings.model)
        answer, status, error = "", "error", None
        sandbox = self.rlm.sandbox_factory(self.context, self.broker.callbacks(), CELL_EXCEPTIONS, self.settings)
        try:
            with sandbox:
                self.messages = [
                    {"role": "system", "content": self._system_prompt()},
                    {"role": "user", "content": prompts.first_user_message(self.query)},
                ]
                answer, status, error = self._loop(sandbox)
        finally:
            self.broker.close()
        self.trace.emit("final", status=status, answer=answer, error=error)
        return self._result(answer, status, error, time.monotonic() - started)

    def _system_prompt(self) -> str:
        s = self.settings
        return prompts.system_prompt(
            context=self.context, offload_threshold=s.offload_threshold if s.offload else None,
            preview_chars=s.preview_chars, max_output_chars=s.max_output_chars,
            extra_helpers="- `budget_status()`: this run's limits and what is used so far (read-only).\n")

    def _loop(self, sandbox: Sandbox) -> tuple[str, Status, str | None]:
        budget = self.ledger.budget
        for iteration in range(1, budget.max_iterations + 1):
            self.ledger.start_iteration()
            self.trace.emit("iteration", iteration=iteration, model=self.settings.model)
            try:
                self.ledger.check_spend()
                reply = self._ask_root(self.messages).text
            except LLMError as exc:
                return "", "error", str(exc)
            except BudgetExceeded as exc:
                return self._out_of_budget(sandbox, exc)
            self.messages.append({"role": "assistant", "content": reply})
            answer = self._handle_reply(sandbox, reply)
            if answer is not None:
                return answer, "completed", None
            if self.broker.budget_hit is not None:
                return self._out_of_budget(sandbox, self.broker.budget_hit)
        return self._last_chance(sandbox, "max_iterations")

    def _handle_reply(self, sandbox: Sandbox, reply: str) -> str | None:
        """Run the reply's code; return the answer if the reply finished the task."""
        parsed = parse_reply(reply)
        observations: list[str] = []
        failed = False
        blocks = parsed.code_blocks
        for index, code in enumerate(blocks):
            result = self._run_cell(sandbox, code, index)
            observations.append(prompts.format_cell(index, len(blocks), result, self.settings.max_output_chars))
            if result.error is not None:
                failed = True
                if index + 1 < len(blocks):
                    observations.append(prompts.skipped_blocks(len(blocks) - index - 1))
                break
            if result.final is not None:
                return result.final.answer
        if parsed.final is not None:
            if failed:
                observations.append(prompts.final_rejected_after_error())
            else:
                answer, problem = self._resolve_final(sandbox, parsed.final)
                if answer is not None:
                    return answer
                observations.append(problem or "")
        elif not blocks:
            self.nudges += 1
            self.trace.emit("nudge", count=self.nudges)
            observations.append(prompts.no_code_nudge())
        self.messages.append({"role": "user", "content": "\n\n".join(observations)})
        return None

    def _run_cell(self, sandbox: Sandbox, code: str, index: int) -> ExecResult:
        settings = self.settings
        timeout = settings.cell_timeout_s
        remaining = self.ledger.remaining_time_s()
        if remaining is not None:
            timeout = max(min(timeout, remaining), 0.1)
        result = sandbox.exec(code, timeout=timeout,
                              offload_threshold=settings.offload_threshold if settings.offload else None,
                              preview_chars=settings.preview_chars)
        self.ledger.count_code_execution()
        self.trace.emit("cell", index=index, code=code, output=result.stdout, stderr=result.stderr,
                        error=str(result.error) if result.error else None, duration_s=round(result.duration_s, 4),
                        offloaded=result.offloaded.name if result.offloaded else None,
                        restarted=result.restarted, timed_out=result.timed_out)
        return result

    def _resolve_final(self, sandbox: Sandbox, final: FinalInText) -> tuple[str | None, str | None]:
        """The answer a textual FINAL/FINAL_VAR names, or why it cannot be accepted."""
        if final.kind == "FINAL_VAR" or final.value.isidentifier():
            # FINAL(x) where x is a variable almost always means the variable.
            result = sandbox.exec(f"FINAL_VAR({final.value!r})")
            if result.final is not None:
                return result.final.answer, None
            if final.kind == "FINAL_VAR":
                return None, prompts.missing_final_var(final.value)
        return final.value, None

    def _ask_root(self, messages: list[dict[str, Any]]) -> Completion:
        completion = self.rlm.llm.complete(self.settings.model, messages)
        self.ledger.record("root", self.settings.model, completion.input_tokens, completion.output_tokens,
                           completion.cost_usd)
        self.trace.emit("model_reply", model=self.settings.model, text=completion.text,
                        input_tokens=completion.input_tokens, output_tokens=completion.output_tokens,
                        duration_s=round(completion.duration_s, 4))
        return completion

    # -- ending without FINAL -------------------------------------------------------------

    def _last_chance(self, sandbox: Sandbox, status: Status, error: str | None = None) -> tuple[str, Status, str | None]:
        """One more root call asking for the best answer from what is known."""
        messages = [*self.messages, {"role": "user", "content": prompts.last_chance()}]
        try:
            reply = self._ask_root(messages).text
        except LLMError as exc:
            return self._partial_answer(), status, error or str(exc)
        self.messages = [*messages, {"role": "assistant", "content": reply}]
        parsed = parse_reply(reply)
        if parsed.final is not None:
            answer, _ = self._resolve_final(sandbox, parsed.final)
            if answer is not None:
                return answer, status, error
        return reply.strip(), status, error

    def _out_of_budget(self, sandbox: Sandbox, exc: BudgetExceeded) -> tuple[str, Status, str | None]:
        status: Status = "timeout" if exc.limit == "max_wall_time_s" else "budget_exhausted"
        self.trace.emit("budget_exhausted", limit=exc.limit, allowed=exc.allowed, used=exc.used)
        if exc.limit in ("max_sub_calls", "max_sub_prompt_chars"):
            try:
                self.ledger.check_spend()  # can we still afford one more root call?
                return self._last_chance(sandbox, status, str(exc))
            except BudgetExceeded:
                pass
        return self._partial_answer(), status, str(exc)

    def _partial_answer(self) -> str:
        """The last thing the model said, as the best answer available without another call."""
        for message in reversed(self.messages):
            if message["role"] == "assistant" and message["content"].strip():
                return message["content"].strip()
        return ""

    def _result(self, answer: str, status: Status, error: str | None, duration_s: float) -> RLMResult:
        ledger = self.ledger
        return RLMResult(
            answer=answer, iterations=ledger.iterations, total_input_tokens=ledger.input_tokens,
            total_output_tokens=ledger.output_tokens, code_executions=ledger.code_executions,
            sub_calls=ledger.sub_calls, history=list(self.messages), status=status, cost_usd=ledger.cost_usd,
            usage=ledger.usage, duration_s=duration_s, trajectory=self.trace.events, error=error)
