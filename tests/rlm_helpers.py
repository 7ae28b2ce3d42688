"""Small helpers shared by the RLM-level tests."""

from __future__ import annotations

from typing import Any

from rlm_sandbox import RLM
from rlm_sandbox.models import LLMClient


def make_rlm(sandbox_factory: Any, root: Any, sub: Any = None, **options: Any) -> RLM:
    """An RLM on scripted models with fast retries and labelled sandboxes."""
    return RLM(model=root.model, sub_model=sub.model if sub else None, sandbox_factory=sandbox_factory,
               llm=LLMClient(backoff_initial_s=0.01, backoff_max_s=0.05), **options)


def user_messages(call: list[dict]) -> list[str]:
    return [m["content"] for m in call if m["role"] == "user"]


def feedback(model: Any, turn: int) -> str:
    """What the model was told before its reply number ``turn`` (0-based)."""
    return user_messages(model.calls[turn])[-1]
