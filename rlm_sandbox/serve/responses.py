"""A run's result in OpenAI's shapes: ``chat.completion`` and ``chat.completion.chunk``.

``finish_reason`` is ``stop`` only for an answer the model gave with FINAL; a run ended by
a limit (iterations, budget, time, a stall) is ``length``, so a client can tell a real
answer from a best effort. ``usage`` counts every model call of the run, sub-calls and
child runs included. The ``rlm`` object says how the run went; ``cost_usd`` is null when a
model's price is unknown, never 0.
"""

from __future__ import annotations

from typing import Any

from ..redaction import redact


def finish_reason(result: Any) -> str:
    return "stop" if result.status == "completed" else "length"


def usage(result: Any) -> dict[str, Any]:
    """OpenAI's ``usage``; ``prompt_tokens_details.cached_tokens`` is the part of the prompt tokens
    the providers read from their prompt caches (only when some were, as OpenAI omits it)."""
    prompt, completion = result.total_input_tokens, result.total_output_tokens
    counted: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                               "total_tokens": prompt + completion}
    cached = result.total_cached_input_tokens
    if cached:
        counted["prompt_tokens_details"] = {"cached_tokens": cached}
    return counted


def rlm_info(result: Any, trace_id: str | None) -> dict[str, Any]:
    return {"status": result.status, "answer_from": result.answer_from, "iterations": result.iterations,
            "sub_calls": result.sub_calls, "code_executions": result.code_executions, "cost_usd": result.cost_usd,
            "duration_s": round(result.duration_s, 4), "error": redact(result.error) if result.error else None,
            "trace_id": trace_id}


def completion(request_id: str, created: int, model: str, result: Any, trace_id: str | None) -> dict[str, Any]:
    return {"id": request_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "finish_reason": finish_reason(result), "logprobs": None,
                         "message": {"role": "assistant", "content": redact(result.answer)}}],
            "usage": usage(result), "rlm": rlm_info(result, trace_id)}


def chunk(request_id: str, created: int, model: str, delta: dict[str, Any] | None,
          finish: str | None = None, **extra: Any) -> dict[str, Any]:
    """One streamed chunk; ``delta`` None makes the usage-only chunk (no choices)."""
    choices = [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]
    return {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model,
            "choices": choices, **extra}
