"""Settings: every option of a run, from arguments, ``RLM_SANDBOX_*`` variables or ``.env``.

Explicit arguments win over the environment, which wins over ``.env``, which wins over
the defaults here. Provider keys are not settings of ours: litellm reads them from the
usual variables (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...), on the host only. Other entries
of ``.env`` are not settings either: ``Settings`` ignores them (it warns, names only, about
``RLM_SANDBOX_*`` names that are not settings), and :func:`load_provider_env` copies the
provider variables among them into this process's environment, never over an exported one.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .core.budget import Budget
from .errors import SettingsError
from .models.base import Price
from .redaction import dotenv_entries, is_secret_name, redact, remember_secret
from .sandbox.base import SandboxLimits

PREFIX = "RLM_SANDBOX_"
#: Where settings and provider keys are read from, relative to the working directory.
ENV_FILE = ".env"
#: ``RLM_SANDBOX_*`` variables that are read elsewhere and are not settings.
OTHER_VARIABLES = frozenset({"RLM_SANDBOX_QUIET",
                             "RLM_SANDBOX_ALLOW_SKIP_DOCKER"})
#: Provider endpoints and options; with secret names (redaction.SECRET_NAME), the entries of
#: ``.env`` that are loaded into the environment for litellm.
PROVIDER_OPTION = re.compile(r"_(?:API_BASE|BASE_URL|API_VERSION|REGION_NAME)$", re.IGNORECASE)
#: Provider keys, as ``doctor`` lists them.
PROVIDER_KEY = re.compile(r"_API_(?:KEY|TOKEN)$|^AWS_ACCESS_KEY_ID$|^AZURE_AD_TOKEN$|^HF_TOKEN$", re.IGNORECASE)

_log = logging.getLogger("rlm_sandbox")
_warned: set[str] = set()


def _is_provider_variable(name: str) -> bool:
    return not name.upper().startswith(PREFIX) and (is_secret_name(name) or bool(PROVIDER_OPTION.search(name)))


def load_provider_env(env_file: str | Path = ENV_FILE) -> list[str]:
    """Copy the provider variables of ``env_file`` into ``os.environ`` where not set; return their names.

    So a key in ``.env`` works exactly as if it were exported: litellm reads it from the
    environment of this (host) process. An exported value always wins. Containers never
    see it: their environment is built from scratch by the sandbox.
    """
    loaded = []
    for name, value in dotenv_entries(env_file).items():
        if value and _is_provider_variable(name) and name not in os.environ:
            os.environ[name] = value
            loaded.append(name)
    return loaded


def provider_keys(env_file: str | Path = ENV_FILE) -> list[tuple[str, str]]:
    """``(name, where)`` of each provider key set, ``where`` being ``environment`` or ``.env``."""
    found = [(name, "environment") for name, value in os.environ.items() if value and PROVIDER_KEY.search(name)]
    seen = {name for name, _ in found}
    found += [(name, ".env") for name, value in dotenv_entries(env_file).items()
              if value and PROVIDER_KEY.search(name) and name not in seen]
    return sorted(found)


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
    if is_secret_name(name):
        return None
    text = redact(str(value))  # a key typed in the wrong place is still a key
    return text if len(text) <= 80 else text[:60] + f"... [{len(text)} chars]"


def unknown_options_message(unknown: list[str]) -> str:
    return (f"unknown option(s) {', '.join(unknown)}; valid options: {', '.join(sorted(Settings.model_fields))}")


class Settings(BaseSettings):
    """Every option of a run. Bad values raise :class:`SettingsError` (a ``ValueError``) naming
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
    # custom pricing (litellm's), for models its price map does not know: USD per token
    input_cost_per_token: float | None = Field(None, ge=0, description="price of model's input tokens")
    output_cost_per_token: float | None = Field(None, ge=0, description="price of model's output tokens")
    sub_input_cost_per_token: float | None = Field(None, ge=0, description="price of sub_model's input tokens")
    sub_output_cost_per_token: float | None = Field(None, ge=0, description="price of sub_model's output tokens")

    # the loop
    max_iterations: int = Field(20, ge=1)
    max_output_chars: int = Field(30_000, ge=200, description="cell output shown to the model per turn")
    offload: bool = Field(True, description="keep long outputs in the sandbox as _result_N")
    offload_threshold: int = Field(500, ge=0, description="longer stdout is offloaded")
    preview_chars: int = Field(200, ge=0, description="start of an offloaded output that is shown")
    verbose: bool = False

    # budgets (None: no limit)
    max_sub_calls: int | None = Field(None, ge=0)
    max_depth: int = Field(1, ge=0)
    max_total_tokens: int | None = Field(None, ge=1)
    max_cost_usd: float | None = Field(None, gt=0)
    max_wall_time_s: float | None = Field(None, gt=0)
    max_sub_prompt_chars: int | None = Field(None, ge=1)
    max_concurrency: int = Field(16, ge=1, description="sub-calls in flight at once, per run")
    max_process_concurrency: int = Field(64, ge=1, description="sub-calls in flight at once across every run "
                                         "of this process (each run waits for its own ceiling)")

    # the sandbox
    sandbox: Literal["docker", "local"] = Field("docker", description="'local' is NOT a security boundary")
    image: str | None = Field(None, description="sandbox image (default: built for this kernel)")
    runtime: str | None = Field(None, description="container runtime, e.g. runsc for gVisor")
    transport: Literal["auto", "socket", "stdio"] = Field(
        "auto", description="socket (a bind-mounted Unix socket) or stdio (the container's attached "
                            "stdin/stdout, for remote daemons); auto picks socket for a local daemon")
    memory: str = "1g"
    cpus: float = Field(1.0, gt=0)
    pids: int = Field(256, ge=8)
    tmpfs_size: str = "64m"
    cell_timeout_s: float = Field(60.0, gt=0)
    cell_wall_timeout_s: float | None = Field(None, gt=0, description="wall-clock limit of one cell, "
                                              "host calls included (default: 10 x cell_timeout_s)")

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

    @field_validator("memory", "tmpfs_size")
    @classmethod
    def _docker_size(cls, value: str, info: ValidationInfo) -> str:
        """Checked now, by the sandbox's own rule, not when the first container starts."""
        try:
            SandboxLimits(**{str(info.field_name): value})
        except ValidationError as exc:
            raise ValueError(_reason(exc.errors()[0])) from None
        return value

    @field_validator("output_cost_per_token", "sub_output_cost_per_token")
    @classmethod
    def _prices_come_in_pairs(cls, value: float | None, info: ValidationInfo) -> float | None:
        """A field validator, not a model one: its error shows this value, never the other
        settings (an api_key among them)."""
        prefix = "sub_" if info.field_name.startswith("sub_") else ""
        if (value is None) != (info.data.get(f"{prefix}input_cost_per_token") is None):
            raise ValueError(f"give both {prefix}input_cost_per_token and {prefix}output_cost_per_token "
                             "(USD per token; 0 for a free local model)")
        root = info.data.get("input_cost_per_token"), info.data.get("output_cost_per_token")
        if prefix and value is not None and None not in root and info.data.get("sub_model") in (
                None, info.data.get("model")) and (info.data.get("sub_input_cost_per_token"), value) != root:
            raise ValueError("sub_model is the same model as model: give its price once "
                             "(input_cost_per_token, output_cost_per_token)")
        return value

    def price(self, role: Literal["root", "sub"]) -> Price | None:
        """The custom price given for the root model or the sub-model, if any."""
        prefix = "" if role == "root" else "sub_"
        values = getattr(self, f"{prefix}input_cost_per_token"), getattr(self, f"{prefix}output_cost_per_token")
        return None if None in values else Price(*values)  # type: ignore[arg-type]

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
        return Budget(max_iterations=self.max_iterations, max_sub_calls=self.max_sub_calls,
                      max_depth=self.max_depth, max_total_tokens=self.max_total_tokens,
                      max_cost_usd=self.max_cost_usd, max_wall_time_s=self.max_wall_time_s,
                      cell_timeout_s=self.cell_timeout_s, max_output_chars=self.max_output_chars,
                      max_sub_prompt_chars=self.max_sub_prompt_chars, max_concurrency=self.max_concurrency)

    def limits(self) -> SandboxLimits:
        return SandboxLimits(memory=self.memory, cpus=self.cpus, pids=self.pids, tmpfs_size=self.tmpfs_size,
                             cell_timeout_s=self.cell_timeout_s, cell_wall_timeout_s=self.cell_wall_timeout_s,
                             max_callback_concurrency=max(self.max_concurrency, 4))

    def completion_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if self.api_key:
            kwargs["api_key"] = self.api_key.get_secret_value()
        if self.temperature is not None:
            kwargs["temperature"] = self.temperature
        return kwargs
