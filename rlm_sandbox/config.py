"""Settings: every option of a run, from arguments, ``RLM_SANDBOX_*`` variables or ``.env``.

Explicit arguments win over the environment, which wins over ``.env``, which wins over
the defaults here. Provider keys are not settings of ours: litellm reads them from the
usual variables (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...), on the host only.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from .core.budget import Budget
from .sandbox.base import SandboxLimits


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RLM_SANDBOX_", env_file=".env", extra="forbid",
                                      env_file_encoding="utf-8", validate_default=True)

    # models
    model: str = Field("gpt-4o-mini", description="root model, as litellm names it")
    sub_model: str | None = Field(None, description="model for llm_query (default: model)")
    api_base: str | None = Field(None, description="provider endpoint, e.g. a local OpenAI-compatible server")
    api_key: SecretStr | None = Field(None, description="provider key, when not in the provider's own variable")
    temperature: float | None = Field(None, ge=0, le=2)
    max_retries: int = Field(4, ge=0, description="retries of transient provider errors")
    request_timeout_s: float = Field(600.0, gt=0)

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

    @classmethod
    def from_options(cls, **options: Any) -> "Settings":
        """Settings from explicit options (None means "not given") over the environment."""
        unknown = sorted(set(options) - set(cls.model_fields))
        if unknown:
            raise TypeError(f"unknown option(s) {', '.join(unknown)}; valid options: "
                            f"{', '.join(sorted(cls.model_fields))}")
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
