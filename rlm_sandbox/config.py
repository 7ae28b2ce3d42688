"""Settings: every option of a run, from arguments, ``RLM_SANDBOX_*`` variables or ``.env``.

Explicit arguments win over the environment, which wins over ``.env``, which wins over
the defaults here. Provider keys are not settings of ours: litellm reads them from the
usual variables (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...), on the host only. Other entries
of ``.env`` are not settings either: ``Settings`` ignores them (it warns, names only, about
``RLM_SANDBOX_*`` names that are not settings); the provider variables among them are
:mod:`rlm_sandbox.provider_env`'s (loading them, and what ``doctor`` reports of them).
"""

from __future__ import annotations

import difflib
import logging
import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from .core.budget import Budget, BudgetFields
from .errors import SettingsError
from .kernel.protocol import PREVIEW_CHARS
from .models.base import Price
from .models.options import check_model_options
from .models.prompt_cache import PromptCache
from .redaction import dotenv_entries, is_secret_name, redact, remember_secret
from .sandbox.base import ContainerLimits, SandboxLimits
from .sandbox.spec import ContainerChoice, SandboxSpec, provider_names

PREFIX = "RLM_SANDBOX_"
#: Where settings and provider keys are read from, relative to the working directory.
ENV_FILE = ".env"
#: ``RLM_SANDBOX_*`` variables that are read elsewhere and are not settings.
OTHER_VARIABLES = frozenset({"RLM_SANDBOX_QUIET",
                             "RLM_SANDBOX_ALLOW_SKIP_DOCKER",
                             "RLM_SANDBOX_SERVER_KEY"})  # `rlm-sandbox serve`'s key

_log = logging.getLogger("rlm_sandbox")
_warned: set[str] = set()


def setting_variables(env_file: str | Path = ENV_FILE) -> dict[str, tuple[str, str]]:
    """``{setting: (variable, where)}`` for settings given by an ``RLM_SANDBOX_*`` variable.

    ``where`` is ``environment`` or ``.env``; the environment wins, as in ``Settings``.
    """
    found: dict[str, tuple[str, str]] = {}
    for source, where in ((os.environ, "environment"), (dotenv_entries(env_file), ".env")):
        for variable in source:
            name = variable.lower().removeprefix(PREFIX.lower())
            if variable.upper().startswith(PREFIX) and name in Settings.model_fields:
                found.setdefault(name, (variable, where))
    return found


def unknown_setting_variables(env_file: str | Path = ENV_FILE) -> list[tuple[str, str]]:
    """``(variable, where)`` for ``RLM_SANDBOX_*`` names that are no setting (most likely typos)."""
    unknown = []
    for source, where in ((os.environ, "environment"), (dotenv_entries(env_file), ".env")):
        for variable in source:
            upper = variable.upper()
            if (upper.startswith(PREFIX) and upper not in OTHER_VARIABLES
                    and upper[len(PREFIX):].lower() not in Settings.model_fields):
                unknown.append((variable, where))
    return unknown


def suggest(name: str, choices: Any) -> str:
    """`` (did you mean X?)`` when ``name`` looks like a typo of one of ``choices``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def _warn_about_unknown_variables() -> None:
    """One log line per unknown ``RLM_SANDBOX_*`` name, once per process; never its value."""
    for variable, where in unknown_setting_variables():
        if variable not in _warned:
            _warned.add(variable)
            hint = suggest(variable.upper(), [PREFIX + field.upper() for field in Settings.model_fields])
            _log.warning("ignoring %s (in the %s): it is not a setting%s; `rlm-sandbox settings` lists them",
                         variable, "environment" if where == "environment" else ".env file", hint)


def _reason(error: Any) -> str:
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    return message[:1].lower() + message[1:]


def _problem(error: Any) -> tuple[str, str | None, str]:
    """(setting, value shown, reason) from one pydantic error."""
    name = ".".join(map(str, error["loc"])) or "settings"
    return name, None if not error["loc"] else _shown(str(error["loc"][0]), error.get("input")), _reason(error)


def _shown(name: str, value: Any) -> str | None:
    if is_secret_name(name) or name.endswith("model_options"):  # options may hold a credential given by mistake
        return None
    text = redact(str(value))  # a key typed in the wrong place is still a key
    return text if len(text) <= 80 else text[:60] + f"... [{len(text)} chars]"


def unknown_options_message(unknown: list[str]) -> str:
    return (f"unknown option(s) {', '.join(unknown)}; valid options: {', '.join(sorted(Settings.model_fields))}")


class Settings(BaseSettings, BudgetFields, ContainerChoice, ContainerLimits):
    """Every option of a run. The budget fields (``BudgetFields``), the container's
    (``ContainerChoice``) and its limits (``ContainerLimits``) are defined once, where they
    belong, and inherited here. Bad values raise :class:`SettingsError` (a ``ValueError``) naming
    each setting, the value given (never a secret's) and what is accepted; unknown
    keyword arguments raise ``TypeError``."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, env_file=ENV_FILE, extra="ignore",
                                      env_file_encoding="utf-8", validate_default=True)

    # models
    model: str = Field("gpt-4o-mini", description="root model, as litellm names it")
    sub_model: str | None = Field(None, description="model for llm_query (default: model)")
    api_base: str | None = Field(None, description="provider endpoint, e.g. a local OpenAI-compatible server")
    api_key: SecretStr | None = Field(None, description="provider key, when not in the provider's own variable")
    temperature: float | None = Field(None, ge=0, le=2)
    max_retries: int = Field(4, ge=0, description="retries of transient provider errors")
    request_timeout_s: float = Field(600.0, gt=0)
    max_tokens: int = Field(4096, ge=1, description="longest reply of the root model (and of child RLMs' roots)")
    sub_max_tokens: int = Field(4096, ge=1, description="longest reply of an llm_query sub-call")
    allowed_sub_models: list[str] = Field(
        default_factory=list, description="models cell code may name in llm_query(model=...) besides sub_model "
                                          "(a JSON list in RLM_SANDBOX_ALLOWED_SUB_MODELS); any other is refused")
    # NoDecode: a JSON object in RLM_SANDBOX_MODEL_OPTIONS is read by our validator, whose errors say what to do
    model_options: Annotated[dict[str, Any], NoDecode] = Field(
        default_factory=dict, description="litellm options for the root model's calls, e.g. {\"top_p\": 0.9} "
                                          "(not max_tokens, keys, retries or prices: those are settings)")
    sub_model_options: Annotated[dict[str, Any], NoDecode] = Field(
        default_factory=dict, description="litellm options for sub-calls and child RLMs' roots")
    supports_system_message: bool = Field(True, description="false folds the system prompt into the first user "
                                          "message, for chat templates that drop system messages")
    context_window: int | None = Field(None, ge=256, description="model's context window in tokens, prompt and "
                                       "reply (default: litellm's model info; learnt from the provider's refusal)")
    sub_context_window: int | None = Field(None, ge=256, description="sub_model's context window, for child RLMs "
                                           "(default: context_window when it is the same model, else litellm's)")
    # custom pricing (litellm's), for models its price map does not know: USD per token
    input_cost_per_token: float | None = Field(None, ge=0, description="price of model's input tokens")
    output_cost_per_token: float | None = Field(None, ge=0, description="price of model's output tokens")
    sub_input_cost_per_token: float | None = Field(None, ge=0, description="price of sub_model's input tokens")
    sub_output_cost_per_token: float | None = Field(None, ge=0, description="price of sub_model's output tokens")
    # the same, for prompt tokens read from / written to the provider's prompt cache (default: the input price)
    cached_input_cost_per_token: float | None = Field(None, ge=0, description="price of model's input tokens read "
                                                      "from the provider's prompt cache")
    cache_write_cost_per_token: float | None = Field(None, ge=0, description="price of model's input tokens written "
                                                     "to the provider's prompt cache (Anthropic, Bedrock)")
    sub_cached_input_cost_per_token: float | None = Field(None, ge=0, description="price of sub_model's cached "
                                                          "input tokens")
    sub_cache_write_cost_per_token: float | None = Field(None, ge=0, description="price of sub_model's input "
                                                         "tokens written to the prompt cache")

    # the loop
    max_output_chars: int = Field(30_000, ge=200, description="cell output shown to the model per turn")
    offload: bool = Field(True, description="keep long outputs in the sandbox as _result_N")
    offload_threshold: int = Field(500, ge=0, description="longer stdout is offloaded")
    preview_chars: int = Field(PREVIEW_CHARS, ge=0, description="start of an offloaded output that is shown")
    compact_at: float = Field(0.85, gt=0, le=1, description="fold older iterations into a digest when a root "
                              "request reaches this fraction of the room the context window leaves for prompts")
    prompt_cache: PromptCache = Field("auto", description="auto: mark cache breakpoints (system prompt, "
                                                 "last message) on root requests to providers that need them "
                                                 "(Claude, Nova); off: never")
    stall_repeats: int = Field(2, ge=0, description="end the run as stalled when the same reply, with the same "
                               "outcome, comes this many times in a row (0: never)")
    stall_idle_replies: int = Field(3, ge=0, description="end the run as stalled after this many replies in a row "
                                    "with no code run and no FINAL (0: never)")
    verbose: bool = False

    # sub-calls across the process (the per-run limits are the shared budget fields)
    max_process_concurrency: int = Field(64, ge=1, description="sub-calls in flight at once across every run "
                                         "of this process (each run waits for its own ceiling)")

    # the sandbox (image, runtime, transport and the container limits are shared fields)
    sandbox: str = Field("docker", description="provider: docker, local (NOT a security boundary), or one "
                                               "registered with rlm_sandbox.sandbox.register_provider")

    @field_validator("sandbox")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        if value not in provider_names():
            raise ValueError(f"no sandbox provider named {value!r}; use one of {', '.join(provider_names())}")
        return value

    def __init__(self, **values: Any) -> None:
        unknown = sorted(key for key in values if not key.startswith("_") and key not in type(self).model_fields)
        if unknown:  # .env and the environment may hold other names; arguments may not
            raise TypeError(unknown_options_message(unknown))
        try:
            super().__init__(**values)
        except ValidationError as exc:  # from None: pydantic's text would show every input, secrets too
            raise SettingsError([_problem(error) for error in exc.errors()]) from None
        remember_secret(self.api_key.get_secret_value() if self.api_key else None, "api_key")
        _warn_about_unknown_variables()

    @field_validator("model_options", "sub_model_options", mode="before")
    @classmethod
    def _litellm_options(cls, value: Any, info: ValidationInfo) -> dict[str, Any]:
        return check_model_options(value, info.field_name or "model_options")

    @field_validator("output_cost_per_token", "sub_output_cost_per_token")
    @classmethod
    def _prices_come_in_pairs(cls, value: float | None, info: ValidationInfo) -> float | None:
        """A field validator, not a model one: its error shows this value, never the other
        settings (an api_key among them)."""
        prefix = "sub_" if (info.field_name or "").startswith("sub_") else ""
        if (value is None) != (info.data.get(f"{prefix}input_cost_per_token") is None):
            raise ValueError(f"give both {prefix}input_cost_per_token and {prefix}output_cost_per_token "
                             "(USD per token; 0 for a free local model)")
        root = info.data.get("input_cost_per_token"), info.data.get("output_cost_per_token")
        if prefix and value is not None and None not in root and info.data.get("sub_model") in (
                None, info.data.get("model")) and (info.data.get("sub_input_cost_per_token"), value) != root:
            raise ValueError("sub_model is the same model as model: give its price once "
                             "(input_cost_per_token, output_cost_per_token)")
        return value

    @field_validator("cached_input_cost_per_token", "cache_write_cost_per_token",
                     "sub_cached_input_cost_per_token", "sub_cache_write_cost_per_token")
    @classmethod
    def _cache_prices_complete_a_price(cls, value: float | None, info: ValidationInfo) -> float | None:
        """A cache price only refines a custom price: alone it would leave the input and output
        prices unknown (and litellm's map, when it has the model, holds its own cache prices)."""
        name = info.field_name or ""
        prefix = "sub_" if name.startswith("sub_") else ""
        if value is None:
            return value
        if info.data.get(f"{prefix}input_cost_per_token") is None or info.data.get(
                f"{prefix}output_cost_per_token") is None:
            raise ValueError(f"{name} refines a custom price: give {prefix}input_cost_per_token and "
                             f"{prefix}output_cost_per_token too (USD per token), or drop {name} to use "
                             "litellm's price map")
        root = info.data.get("input_cost_per_token"), info.data.get("output_cost_per_token")
        if prefix and None not in root and info.data.get("sub_model") in (None, info.data.get("model")) and \
                value != info.data.get(name.removeprefix("sub_")):
            raise ValueError(f"sub_model is the same model as model: give its price once ({name.removeprefix('sub_')})")
        return value

    def price(self, role: Literal["root", "sub"]) -> Price | None:
        """The custom price given for the root model or the sub-model, if any (with its cache
        prices when given; cached input is charged as input otherwise)."""
        prefix = "" if role == "root" else "sub_"
        values = getattr(self, f"{prefix}input_cost_per_token"), getattr(self, f"{prefix}output_cost_per_token")
        if None in values:
            return None
        return Price(*values, cached_input_per_token=getattr(self, f"{prefix}cached_input_cost_per_token"),
                     cache_write_per_token=getattr(self, f"{prefix}cache_write_cost_per_token"))

    def custom_price(self, model: str) -> Price | None:
        """The custom price that applies to `model` (by name), if any was given."""
        if model == self.model and self.price("root") is not None:
            return self.price("root")
        if model == (self.sub_model or self.model):
            return self.price("sub") or (self.price("root") if model == self.model else None)
        return None

    @classmethod
    def from_options(cls, **options: Any) -> "Settings":
        """Settings from explicit options (None means "not given") over the environment."""
        unknown = sorted(set(options) - set(cls.model_fields))
        if unknown:
            raise TypeError(unknown_options_message(unknown))
        return cls(**{key: value for key, value in options.items() if value is not None})

    def budget(self) -> Budget:
        return Budget(**self.model_dump(include=set(BudgetFields.model_fields)))

    def limits(self) -> SandboxLimits:
        return SandboxLimits(**self.model_dump(include=set(ContainerLimits.model_fields)),
                             max_callback_concurrency=max(self.max_concurrency, 4))

    def sandbox_spec(self) -> SandboxSpec:
        """The run's sandbox as a picklable spec (what a pool, a worker or a Ray task rebuilds)."""
        return SandboxSpec(provider=self.sandbox, limits=self.limits(),
                           **self.model_dump(include=set(ContainerChoice.model_fields)))

    def model_options_for(self, role: Literal["root", "sub"]) -> dict[str, Any]:
        """The litellm options of the root model's calls, or of sub-calls and child runs' roots."""
        return dict(self.model_options if role == "root" else self.sub_model_options)

    def window(self, role: Literal["root", "sub"]) -> int | None:
        """The context window given for the root model or the sub-model (None: ask litellm)."""
        if role == "root":
            return self.context_window
        same = self.sub_model in (None, self.model)
        return self.sub_context_window or (self.context_window if same else None)

    def completion_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key:
            kwargs["api_key"] = self.api_key.get_secret_value()
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        return kwargs
