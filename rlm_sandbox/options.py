"""The keyword options of ``RLM()`` and ``run()``/``arun()``, as types a checker and an editor read.

``RLM(model, **options)`` takes any :class:`~rlm_sandbox.Settings` field as a keyword. Typed as
``**options: Any`` an editor could show none of them and a checker could catch no typo; typed as
``Unpack`` of these ``TypedDict``\\ s it shows every setting with its type, and a misspelt one is an
error before anything runs. Each key takes ``None`` too, meaning "not given": the value then comes
from ``RLM_SANDBOX_*``, ``.env`` or the default, as :meth:`Settings.from_options` reads it.

The lists are written out (a checker cannot read a generated class); ``tests/test_typed_api.py``
holds them equal to ``Settings.model_fields`` and to ``RLM()``'s own keywords, so they cannot drift.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Literal, TypedDict

from pydantic import SecretStr

from .core.answer_schema import AnswerSchema
from .core.budget import Budget
from .events.stream import Listener
from .models.base import ModelClient
from .models.prompt_cache import PromptCache
from .sandbox.spec import SandboxFactory

__all__ = ["RLMOptions", "SettingsAfterModel", "SettingsOptions"]


class SettingsAfterModel(TypedDict, total=False):
    """Every setting but ``model``, which ``RLM()`` and ``run()`` take as a parameter of its own."""

    # models
    sub_model: str | None
    api_base: str | None
    api_key: str | SecretStr | None
    temperature: float | None
    max_retries: int | None
    request_timeout_s: float | None
    max_tokens: int | None
    sub_max_tokens: int | None
    allowed_sub_models: list[str] | None
    model_options: dict[str, Any] | None
    sub_model_options: dict[str, Any] | None
    supports_system_message: bool | None
    context_window: int | None
    sub_context_window: int | None
    input_cost_per_token: float | None
    output_cost_per_token: float | None
    sub_input_cost_per_token: float | None
    sub_output_cost_per_token: float | None
    cached_input_cost_per_token: float | None
    cache_write_cost_per_token: float | None
    sub_cached_input_cost_per_token: float | None
    sub_cache_write_cost_per_token: float | None
    # the loop
    max_output_chars: int | None
    offload: bool | None
    offload_threshold: int | None
    preview_chars: int | None
    compact_at: float | None
    prompt_cache: PromptCache | None
    stall_repeats: int | None
    stall_idle_replies: int | None
    verbose: bool | None
    max_process_concurrency: int | None
    # budgets (or all at once as RLM(budget=Budget(...)))
    max_iterations: int | None
    max_sub_calls: int | None
    max_depth: int | None
    max_total_tokens: int | None
    max_cost_usd: float | None
    max_wall_time_s: float | None
    max_sub_prompt_chars: int | None
    max_concurrency: int | None
    # the sandbox and its container
    sandbox: str | None
    image: str | None
    runtime: str | None
    transport: Literal["auto", "socket", "stdio"] | None
    memory: str | None
    cpus: float | None
    pids: int | None
    tmpfs_size: str | None
    cell_timeout_s: float | None
    cell_wall_timeout_s: float | None


class SettingsOptions(SettingsAfterModel, total=False):
    """Every setting, as ``Settings.from_options(**options)`` takes them."""

    model: str | None


class RLMOptions(SettingsAfterModel, total=False):
    """What ``run()``/``arun()`` pass on to ``RLM()`` after ``model``: every setting, and
    ``RLM()``'s own keywords (see :class:`rlm_sandbox.RLM`)."""

    budget: Budget | None
    tools: dict[str, Callable[..., Any]] | None
    answer_schema: AnswerSchema | None
    on_event: Listener | None
    sandbox_factory: SandboxFactory | None
    llm: ModelClient | None
    record: str | Path | None
    replay: str | Path | None
