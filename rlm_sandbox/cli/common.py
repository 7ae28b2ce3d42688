"""What every command shares: failing with a message and an exit code, printing a result."""

from __future__ import annotations

import json
from typing import Any

import typer

#: Provider key variables litellm reads, and a model to use when only that key is set.
KEY_DEFAULT_MODELS = {"OPENAI_API_KEY": "gpt-4o-mini", "ANTHROPIC_API_KEY": "anthropic/claude-3-5-haiku-latest",
                      "GEMINI_API_KEY": "gemini/gemini-1.5-flash", "MISTRAL_API_KEY": "mistral/mistral-small-latest"}


def fail(message: str, code: int = 1) -> typer.Exit:
    typer.secho(f"rlm-sandbox: {message}", fg=typer.colors.RED, err=True)
    return typer.Exit(code)


def print_result(result: Any, as_json: bool) -> None:
    if as_json:
        data = result.to_dict()
        data.pop("trajectory", None)
        typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
    else:
        typer.echo(result.answer)
    cost = "unknown" if result.cost_usd is None else f"${result.cost_usd:.4f}"  # unknown is never $0
    summary = (f"status={result.status} iterations={result.iterations} code_executions={result.code_executions} "
               f"sub_calls={result.sub_calls} tokens={result.total_input_tokens}+{result.total_output_tokens} "
               f"cost={cost} time={result.duration_s:.1f}s answer_from={result.answer_from}")
    typer.secho(summary, err=True, dim=True)
    if result.answer_from != "final":  # a fallback answer never passes for a FINAL one
        source = {"answer_now": "the model's reply to one last answer-now request",
                  "last_reply": "the model's last reply"}.get(result.answer_from)
        typer.secho(f"rlm-sandbox: NOT A FINAL ANSWER: the run ended without FINAL; the answer is {source}"
                    if source else "rlm-sandbox: NO ANSWER: the run ended without one", fg=typer.colors.YELLOW,
                    err=True)
    if result.error:
        typer.secho(f"rlm-sandbox: {result.error}", fg=typer.colors.YELLOW, err=True)


def exit_code(status: str) -> int:
    return {"completed": 0, "error": 1}.get(status, 3)
