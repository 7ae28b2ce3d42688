"""``rlm_solver``: inspect_ai samples answered by our RLM, through the public API.

    from rlm_sandbox.integrations.inspect_solver import rlm_solver
    Task(dataset=..., solver=rlm_solver("openai/gpt-4o-mini", context="document"), scorer=...)

Each sample is one ``RLM.arun`` (its own hardened container). The context is the sample
metadata field named by ``context``, and the sample's input is the question; with
``context="input"`` the input itself is the context and ``query`` is the question. The
answer becomes the sample's output; the run's token usage is recorded in inspect's per-sample
and per-eval usage (and token limits) under each model's name; the run's summary goes in
``state.metadata["rlm_sandbox"]`` and its whole event trace (the same records as
``--trace``) in ``state.store["rlm_sandbox:trace"]``, both in the eval log.
"""

from __future__ import annotations

import json
from typing import Any

from inspect_ai.model import ChatMessageAssistant, ModelOutput
from inspect_ai.model import ModelUsage as InspectUsage
from inspect_ai.model._model import model_usage_context_var, sample_model_usage_context_var, set_model_usage
from inspect_ai.solver import Generate, Solver, TaskState, solver
from inspect_ai.util._limit import record_model_usage

from .. import RLM, RLMResult

TRACE_KEY = "rlm_sandbox:trace"
METADATA_KEY = "rlm_sandbox"
DEFAULT_QUERY = "Answer the request or question that the context holds."


@solver
def rlm_solver(model: str | None = None, sub_model: str | None = None, context: str = "input",
               query: str = DEFAULT_QUERY, **options: Any) -> Solver:
    """Answer each sample with a Recursive Language Model whose code runs in our sandbox.

    Args:
      model: litellm name of the root model; None uses the task's inspect model by its
        ``provider/name`` (litellm's spelling too for openai, anthropic, ...).
      sub_model: litellm name of the model ``llm_query`` calls (None: the root model).
      context: the sample metadata field that holds the context (the input is then the
        question), or "input" to use the sample's input as the context.
      query: the question when ``context="input"``.
      **options: any other ``RLM`` option (``max_iterations``, budgets, ``image``, ``memory``,
        ``llm``, ...), checked now rather than per sample.
    """
    if not isinstance(context, str) or not context:
        raise ValueError(f"context must name a metadata field or be 'input', not {context!r}")
    if model is not None:  # bad options fail at task creation, not in every sample
        RLM(model=model, sub_model=sub_model, **options)

    async def solve(state: TaskState, generate: Generate) -> TaskState:
        root = model or str(state.model)
        if context == "input":
            question, text = query, state.input_text
        else:
            if context not in state.metadata:
                raise ValueError(f"sample {state.sample_id!r} has no metadata field {context!r} to use as the "
                                 f"RLM's context (it has {sorted(state.metadata) or 'none'}); pass "
                                 "rlm_solver(context=...) the field that holds it, or context='input'")
            question, text = state.input_text, state.metadata[context]
        result = await RLM(model=root, sub_model=sub_model, **options).arun(question, text)
        _record_usage(result)
        state.output = ModelOutput.from_content(model=f"rlm/{root}", content=result.answer)
        state.output.usage = _inspect_usage(result.total_input_tokens, result.total_output_tokens, result.cost_usd,
                                            result.total_cached_input_tokens,
                                            sum(u.cache_write_tokens for u in result.usage))
        state.messages.append(ChatMessageAssistant(content=result.answer, model=f"rlm/{root}"))
        state.metadata[METADATA_KEY] = _summary(result)
        state.store.set(TRACE_KEY, [json.loads(event.to_json()) for event in result.trajectory])
        return state

    return solve


def _inspect_usage(input_tokens: int, output_tokens: int, cost: float | None, cached_input_tokens: int = 0,
                   cache_write_tokens: int = 0) -> InspectUsage:
    """inspect's usage from ours. Our ``input_tokens`` is the whole prompt, with the cache reads
    and writes as parts of it; inspect's ``input_tokens`` is the part charged at the full rate,
    beside ``input_tokens_cache_read`` and ``_write`` (None: the provider reported none)."""
    return InspectUsage(input_tokens=input_tokens - cached_input_tokens - cache_write_tokens,
                        output_tokens=output_tokens, total_tokens=input_tokens + output_tokens, total_cost=cost,
                        input_tokens_cache_read=cached_input_tokens or None,
                        input_tokens_cache_write=cache_write_tokens or None)


def _record_usage(result: RLMResult) -> None:
    """Add the run's usage, per model, to inspect's sample and eval totals and its token limits."""
    for usage in result.usage:
        counted = _inspect_usage(usage.input_tokens, usage.output_tokens, usage.cost_usd,
                                 usage.cached_input_tokens, usage.cache_write_tokens)
        set_model_usage(usage.model, counted, sample_model_usage_context_var.get(None))
        set_model_usage(usage.model, counted, model_usage_context_var.get(None))
        record_model_usage(counted)


def _summary(result: RLMResult) -> dict[str, Any]:
    return {"status": result.status, "answer_from": result.answer_from, "iterations": result.iterations,
            "code_executions": result.code_executions, "sub_calls": result.sub_calls,
            "input_tokens": result.total_input_tokens, "output_tokens": result.total_output_tokens,
            "cached_input_tokens": result.total_cached_input_tokens,
            "cost_usd": result.cost_usd, "duration_s": round(result.duration_s, 3), "error": result.error}
