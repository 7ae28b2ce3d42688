"""Asking an endpoint once whether the model sees the system message.

Some chat templates (of small open models behind llama.cpp, Ollama, vLLM) drop the system
message: the model then never sees the engine's instructions, and answers the bare query.
One call tells: the system message holds a code word the user message asks for, and is
long enough that the prompt tokens the provider reports show whether it was in the prompt
at all. ``rlm-sandbox doctor --model M`` uses this; the fix is ``supports_system_message=false``.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from .runtime import load_litellm

__all__ = ["SystemMessageCheck", "check_system_message"]

_WORDS = ("pelican", "quartz", "juniper", "walrus", "saffron", "obsidian", "tangerine", "marmot")
_FILLER = ("This message sets up a short test of the chat template. It holds instructions that only the system "
           "role carries, and a code word that appears nowhere else in the conversation. A template that passes "
           "the system message on lets the model read it; one that drops it leaves the model with the user turn "
           "alone, which asks for the word without saying it. ")


@dataclass(frozen=True)
class SystemMessageCheck:
    """``seen``: True (the model sees the system message), False (it is dropped), None (cannot tell)."""

    seen: bool | None
    detail: str


def check_system_message(model: str, *, completion_kwargs: dict[str, Any] | None = None,
                         timeout_s: float = 120.0) -> SystemMessageCheck:
    """One short call to ``model``; raises LLMError when the call itself fails."""
    from .litellm_client import LLMClient, _wrap  # the client's own failure messages

    litellm = load_litellm()
    word = f"{random.choice(_WORDS)}-{random.randint(100, 999)}"
    system = f"{_FILLER * 3}The code word is {word}. When asked for the code word, reply with it and nothing else."
    messages = [{"role": "system", "content": system},
                {"role": "user", "content": "What is the code word? Reply with the code word only."}]
    call = {**(completion_kwargs or {}), "model": model, "messages": messages, "max_tokens": 24,
            "timeout": timeout_s, "num_retries": 0, "max_retries": 0, "stream": False}
    try:
        response = litellm.completion(**call)
    except Exception as exc:  # every failure leaves as LLMError
        raise _wrap(exc, model, 1, call) from exc
    choices = getattr(response, "choices", None) or []
    text = str(getattr(getattr(choices[0], "message", None), "content", "") or "") if choices else ""
    usage = getattr(response, "usage", None)
    reported = int(getattr(usage, "prompt_tokens", 0) or 0) if usage is not None else 0
    system_tokens = LLMClient.count_tokens(model, [messages[0]])
    if word.lower() in text.lower():
        return SystemMessageCheck(True, f"the model repeated a code word only the system message held ({word})")
    if reported and reported < system_tokens // 2:
        return SystemMessageCheck(False, f"the provider counted {reported} prompt tokens, while the system message "
                                         f"alone is about {system_tokens}: the chat template drops it")
    if reported:
        return SystemMessageCheck(True, f"the provider counted {reported} prompt tokens, so the system message "
                                        f"(about {system_tokens}) was in the prompt, though the model did not "
                                        "repeat its code word")
    return SystemMessageCheck(None, "the model did not repeat the code word and the provider reported no token "
                                    "usage, so it cannot be told whether the system message was seen")

