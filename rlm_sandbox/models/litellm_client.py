"""Model calls through litellm: retries with backoff, token usage and cost.

Why a wrapper at all: the engine and the broker need one answer per call — the text, the
tokens and the dollars spent — and one kind of failure to handle (`LLMError`), whatever
the provider. Transient failures (rate limits, timeouts, 5xx, dropped connections) are
retried here with jittered exponential backoff; permanent ones (bad key, unknown model,
rejected request) fail at once with a message that says what to fix. litellm's own
retries and the OpenAI SDK's are turned off, so ours are the only ones and `retries`
counts them all.

litellm is imported lazily (it takes seconds to import), and always with its *local*
model cost map, so pricing never triggers a download.
"""

from __future__ import annotations

import os

# Before any import of litellm anywhere in this process: use the cost map bundled with
# the package instead of fetching one over the network at import time.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import random
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from ..errors import (
    LLMAuthenticationError,
    LLMContextWindowExceeded,
    LLMError,
    LLMModelNotFound,
    LLMUnavailable,
)
from ..redaction import redact

__all__ = ["Completion", "LLMClient", "is_transient"]

_litellm_module: ModuleType | None = None


def _litellm() -> ModuleType:
    """Import litellm on first use (slow: 1-4 s) and keep it quiet on stdout.

    litellm prints banners ("Provider List: ...", "Give Feedback / Get Help") on stdout
    for errors we catch and explain ourselves; they would corrupt the CLI's output.
    """
    global _litellm_module
    if _litellm_module is None:
        import litellm

        litellm.suppress_debug_info = True
        _litellm_module = litellm
    return _litellm_module


@dataclass(frozen=True)
class Completion:
    """One model answer and what it cost.

    `duration_s` is the wall time of the whole call, retries and backoff included;
    `retries` is how many attempts failed transiently before this one succeeded.
    """

    text: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: float
    duration_s: float
    retries: int

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


# --- classifying failures ------------------------------------------------------------

_TRANSIENT_NAMES = ("RateLimitError", "Timeout", "APIConnectionError", "InternalServerError",
                    "ServiceUnavailableError", "BadGatewayError")
_PERMANENT_NAMES = ("AuthenticationError", "PermissionDeniedError", "NotFoundError",
                    "BadRequestError", "UnprocessableEntityError")
#: Words of "no key was configured" errors that litellm does not map to AuthenticationError
#: (with openai>=2 the SDK's wording changed, and litellm reports it as a 500).
_MISSING_KEY_MARKERS = ("missing credentials", "api_key client option must be set",
                        "missing api key", "no api key provided", "api key is missing")
_TRANSIENT_STATUS = frozenset({408, 409, 425, 429})


def _classes(names: tuple[str, ...]) -> tuple[type[BaseException], ...]:
    litellm = _litellm()
    found = [getattr(litellm, name, None) for name in names]
    return tuple(cls for cls in found if isinstance(cls, type))


def _status_code(exc: BaseException) -> int | None:
    code = getattr(exc, "status_code", None)
    try:
        return int(code) if code is not None else None
    except (TypeError, ValueError):
        return None


def _is_missing_key(exc: BaseException) -> bool:
    text = str(exc).lower()
    return any(marker in text for marker in _MISSING_KEY_MARKERS)


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same call may succeed (rate limit, timeout, 5xx, network).

    Permanent classes are checked first because litellm's hierarchy nests some of them
    under generic ones; a missing API key is permanent even when litellm calls it a 500.
    """
    if _is_missing_key(exc):
        return False
    if isinstance(exc, _classes(_PERMANENT_NAMES)):
        return False
    if isinstance(exc, _classes(_TRANSIENT_NAMES)):
        return True
    import openai  # a litellm dependency; already imported by it

    if isinstance(exc, (openai.APIConnectionError, openai.APITimeoutError,
                        openai.RateLimitError, openai.InternalServerError)):
        return True
    if isinstance(exc, openai.APIError):  # litellm.APIError is one: judge it by status
        status = _status_code(exc)
        return status is not None and (status >= 500 or status in _TRANSIENT_STATUS)
    return False


def _retry_after_s(exc: BaseException) -> float | None:
    """The provider's Retry-After hint in seconds, when it sent one."""
    headers: Any = getattr(exc, "headers", None)
    response = getattr(exc, "response", None)
    if not headers and response is not None:
        headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        value = headers.get("retry-after") or headers.get("Retry-After")
        return max(0.0, float(value)) if value is not None else None
    except (AttributeError, TypeError, ValueError):
        return None


def _first_line(exc: BaseException, limit: int = 500) -> str:
    text = str(exc).strip() or type(exc).__name__
    text = text.splitlines()[0] if text else text
    return text[:limit]


def _missing_keys_hint(model: str) -> str:
    try:
        env = _litellm().validate_environment(model=model)
        missing = list(env.get("missing_keys") or [])
    except Exception:  # noqa: BLE001 - a hint must never fail the error path
        missing = []
    if missing:
        return f"set {' and '.join(missing)} in the environment (litellm reads keys from there)"
    return ("set OPENAI_API_KEY (or the provider's key variable, e.g. ANTHROPIC_API_KEY); "
            "litellm reads keys from the environment")


def _wrap(exc: BaseException, model: str, attempts: int) -> LLMError:
    """Turn whatever litellm raised into an LLMError whose message says what to do."""
    litellm = _litellm()
    status = _status_code(exc)
    detail = redact(_first_line(exc))  # a provider may echo the key it was sent
    if is_transient(exc):
        return LLMUnavailable(
            f"model {model!r}: the provider kept failing after {attempts} attempt(s): {detail}. "
            "Try again later, lower the concurrency, or raise max_retries.",
            model=model, transient=True, attempts=attempts, status_code=status)

    def is_a(name: str) -> bool:
        cls = getattr(litellm, name, None)
        return isinstance(cls, type) and isinstance(exc, cls)

    kind: type[LLMError] = LLMError
    if is_a("AuthenticationError") or _is_missing_key(exc):
        kind = LLMAuthenticationError
        text = (f"authentication failed: {detail}. {_missing_keys_hint(model)}, "
                "or pass api_key in completion_kwargs.")
    elif is_a("PermissionDeniedError"):
        kind = LLMAuthenticationError
        text = (f"the key was refused access: {detail}. Check that the account behind the "
                "key may use this model.")
    elif is_a("ContextWindowExceededError"):
        kind = LLMContextWindowExceeded
        text = (f"the prompt is longer than the model's context window: {detail}. "
                "Send less text per call or use a model with a longer window.")
    elif is_a("LiteLLMUnknownProvider") or "LLM Provider NOT provided" in str(exc):
        kind = LLMModelNotFound
        text = ("litellm does not know this model's provider. Check the model name; it "
                "needs a provider prefix, e.g. 'openai/gpt-4o-mini'.")
    elif is_a("NotFoundError"):
        kind = LLMModelNotFound
        text = (f"not found: {detail}. Check the model name, e.g. 'openai/gpt-4o-mini', "
                "and api_base if you set one.")
    elif is_a("ContentPolicyViolationError"):
        text = f"the provider refused the content: {detail}."
    elif getattr(exc, "llm_provider", None) == "scripted":  # rlm_sandbox.testing says it all
        text = f"{detail} (not retried)"
    elif is_a("BadRequestError") or is_a("UnprocessableEntityError"):
        text = (f"the provider rejected the request: {detail}. Check the messages and "
                "completion_kwargs (not retried).")
    else:
        text = f"the call failed: {type(exc).__name__}: {detail}"
    return kind(f"model {model!r}: {text}", model=model, transient=False, attempts=attempts,
                status_code=status)


# --- the client --------------------------------------------------------------------------

class LLMClient:
    """Calls models through litellm; sync `complete` and async `acomplete` twins.

    `completion_kwargs` go to every litellm call (api_base, api_key, temperature, ...);
    `timeout_s` bounds each attempt (a `timeout` in completion_kwargs wins).
    Up to `max_retries` retries follow a transient failure, waiting
    `backoff_initial_s * 2**n` (capped at `backoff_max_s`) plus random jitter, or the
    provider's Retry-After when longer. Every failure comes out as an `LLMError`.
    The client holds no connection state, so one instance may be shared by threads.
    """

    def __init__(self, *, max_retries: int = 4, backoff_initial_s: float = 0.5,
                 backoff_max_s: float = 20.0, timeout_s: float = 600.0,
                 completion_kwargs: dict | None = None) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be >= 0")
        self.max_retries = max_retries
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.timeout_s = timeout_s
        self.completion_kwargs = dict(completion_kwargs or {})

    def __repr__(self) -> str:
        shown = {k: ("***" if "key" in k.lower() else v) for k, v in self.completion_kwargs.items()}
        return (f"LLMClient(max_retries={self.max_retries}, timeout_s={self.timeout_s}, "
                f"completion_kwargs={shown})")

    # -- shared pieces --

    def _kwargs(self, model: str, messages: list[dict]) -> dict[str, Any]:
        kwargs: dict[str, Any] = {**self.completion_kwargs, "model": model, "messages": messages}
        kwargs.setdefault("timeout", self.timeout_s)
        kwargs["num_retries"] = 0   # litellm's own retry loop
        kwargs["max_retries"] = 0   # the OpenAI SDK client's retry loop
        kwargs["stream"] = False
        return kwargs

    def _retrying_kwargs(self) -> dict[str, Any]:
        from tenacity import retry_if_exception, stop_after_attempt, wait_exponential_jitter

        backoff = wait_exponential_jitter(initial=self.backoff_initial_s, max=self.backoff_max_s,
                                          jitter=self.backoff_initial_s)

        def wait(retry_state: Any) -> float:
            delay = backoff(retry_state)
            outcome = retry_state.outcome
            hint = _retry_after_s(outcome.exception()) if outcome is not None else None
            if hint is not None:
                delay = max(delay, min(hint, self.backoff_max_s) + random.uniform(0, 0.1))
            return delay

        return {"stop": stop_after_attempt(self.max_retries + 1), "wait": wait,
                "retry": retry_if_exception(is_transient), "reraise": True}

    def _result(self, response: Any, model: str, started: float, attempts: int) -> Completion:
        choices = getattr(response, "choices", None) or []
        message = getattr(choices[0], "message", None) if choices else None
        text = getattr(message, "content", None) if message is not None else None
        usage = getattr(response, "usage", None)
        input_tokens = int(getattr(usage, "prompt_tokens", 0) or 0) if usage is not None else 0
        output_tokens = int(getattr(usage, "completion_tokens", 0) or 0) if usage is not None else 0
        return Completion(
            text=text if isinstance(text, str) else "",
            model=model,
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            cost_usd=_cost(response, model) if usage is not None else 0.0,
            duration_s=time.perf_counter() - started,
            retries=attempts - 1,
        )

    # -- the twins --

    def complete(self, model: str, messages: list[dict]) -> Completion:
        """Call `model` with `messages`; retry transient failures; raise LLMError."""
        from tenacity import Retrying

        litellm = _litellm()
        kwargs = self._kwargs(model, messages)
        started = time.perf_counter()
        attempts = 0
        try:
            for attempt in Retrying(**self._retrying_kwargs()):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    response = litellm.completion(**kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure leaves as LLMError
            raise _wrap(exc, model, attempts) from exc
        return self._result(response, model, started, attempts)

    async def acomplete(self, model: str, messages: list[dict]) -> Completion:
        """Async twin of `complete` (litellm.acompletion; backoff with asyncio.sleep)."""
        from tenacity import AsyncRetrying

        litellm = _litellm()
        kwargs = self._kwargs(model, messages)
        started = time.perf_counter()
        attempts = 0
        try:
            async for attempt in AsyncRetrying(**self._retrying_kwargs()):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    response = await litellm.acompletion(**kwargs)
        except Exception as exc:  # noqa: BLE001 - every failure leaves as LLMError
            raise _wrap(exc, model, attempts) from exc
        return self._result(response, model, started, attempts)


def _cost(response: Any, model: str) -> float:
    """USD for one response from litellm's local price map; 0.0 when it has no price.

    litellm already prices each response during the call (`_hidden_params`, computed by
    the same `completion_cost`); ask `completion_cost` again only when that is missing
    and the price map knows the model (a failing lookup costs about a millisecond).
    """
    hidden = getattr(response, "_hidden_params", None)
    cost = hidden.get("response_cost") if isinstance(hidden, dict) else None
    if cost is None:
        litellm = _litellm()
        bare = model.split("/", 1)[1] if "/" in model else model
        if model in litellm.model_cost or bare in litellm.model_cost:
            try:
                cost = litellm.completion_cost(completion_response=response, model=model)
            except Exception:  # noqa: BLE001 - an unknown price is not an error
                cost = None
    try:
        return max(0.0, float(cost)) if cost is not None else 0.0
    except (TypeError, ValueError):
        return 0.0
