"""``--baseline direct``: the model asked once, with the whole context in its prompt.

The context is cut to fit the model's window (``max_input_tokens`` from litellm's model
info, less room for the question and the reply) and the result is marked ``truncated`` when
it was cut, so the report can set "weak model + RLM" beside "strong model, direct" as the
original project's table does. The call goes through the same model client as the runs, so
it is recorded and replayed like every other call.
"""

from __future__ import annotations

import time
from typing import Any

from ..errors import LLMError
from ..models import ModelClient, context_text, model_window
from .results import DirectResult

__all__ = ["DEFAULT_WINDOW", "DirectResult", "ask_direct", "direct_prompt", "split_direct_prompt", "window_of"]

#: The window assumed for a model litellm has no information about (tokens).
DEFAULT_WINDOW = 128_000
#: Tokens kept free for the question, the instructions and the reply.
RESERVE_TOKENS = 4_096
_HEAD = "Read the text below, then answer the question after it.\n\n<text>\n"
_TAIL = "\n</text>\n\nQuestion: "


def direct_prompt(text: str, query: str) -> str:
    return f"{_HEAD}{text}{_TAIL}{query}"


def split_direct_prompt(prompt: str) -> tuple[str, str] | None:
    """(text, question) of a direct prompt, or None if ``prompt`` is not one."""
    if not prompt.startswith(_HEAD) or _TAIL not in prompt:
        return None
    text, _, query = prompt[len(_HEAD):].rpartition(_TAIL)
    return text, query


def window_of(model: str) -> tuple[int, bool]:
    """(the model's input window in tokens, whether litellm knows it)."""
    window = model_window(model)
    return (window, True) if window is not None else (DEFAULT_WINDOW, False)


def fit(client: ModelClient, model: str, text: str, query: str, window: int) -> str:
    """``text`` cut (from the end) until the prompt fits ``window`` tokens with room to spare."""
    budget = max(256, window - RESERVE_TOKENS)
    if len(text) // 8 > budget * 2:  # far too long: cut by characters before counting anything
        text = text[:budget * 6]
    while True:
        tokens = client.count_tokens(model, text=direct_prompt(text, query))
        if tokens <= budget or not text:
            return text
        text = text[:max(0, int(len(text) * budget / tokens * 0.98))]


async def ask_direct(client: ModelClient, model: str, context: Any, query: str, *,
                     max_tokens: int = 4096) -> DirectResult:
    """One call with the (possibly cut) context in the prompt; failures come back as ``error``."""
    started = time.perf_counter()
    text = context_text(context)
    window, known = window_of(model)
    sent = fit(client, model, text, query, window)
    base = dict(truncated=len(sent) < len(text), context_chars=len(text), sent_chars=len(sent),
                window_tokens=window, window_known=known)
    try:
        completion = await client.acomplete(model, [{"role": "user", "content": direct_prompt(sent, query)}],
                                            max_tokens=max_tokens)
    except LLMError as exc:
        return DirectResult(answer="", **base, input_tokens=exc.input_tokens, output_tokens=exc.output_tokens,
                            cached_input_tokens=exc.cached_input_tokens, cost_usd=exc.cost_usd,
                            duration_s=time.perf_counter() - started, error=str(exc))
    return DirectResult(answer=completion.text.strip(), **base, input_tokens=completion.input_tokens,
                        output_tokens=completion.output_tokens, cached_input_tokens=completion.cached_input_tokens,
                        cost_usd=completion.cost_usd, duration_s=time.perf_counter() - started)
