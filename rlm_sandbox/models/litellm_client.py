"""Model calls through litellm: retries with backoff, token usage and cost.

Why a wrapper at all: the engine and the broker need one answer per call — the text, the
tokens and the dollars spent — and one kind of failure to handle (`LLMError`), whatever
the provider. Transient failures (rate limits, timeouts, 5xx, dropped connections, empty
replies) are retried here with jittered exponential backoff; permanent ones (bad key,
unknown model, rejected request) fail at once with a message that says what to fix.
litellm's own retries and the OpenAI SDK's are turned off, so ours are the only ones and
`retries` counts them all.

litellm is imported lazily and offline, and called on one event loop per process: see
`runtime.py`.
"""

from __future__ import annotations

import os
import random
import re
import time
from typing import Any

from ..errors import (
    LLMAuthenticationError,
    LLMContextWindowExceeded,
    LLMEmptyReply,
    LLMError,
    LLMModelNotFound,
    LLMUnavailable,
)
from ..redaction import redact, remember_secret
from .base import Completion, OnRetry, Price, RetryCause
from .options import check_model_options
from .runtime import load_litellm, on_model_loop

__all__ = ["Completion", "LLMClient", "Price", "cache_parts", "is_transient", "model_window"]

#: Retries after a failure to connect at all (refused, unknown host): almost always a wrong
#: api_base or a server that is down, which waiting does not fix; one retry covers a blip.
CONNECT_RETRIES = 1


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
#: Refusals of an over-long prompt that litellm does not map to ContextWindowExceededError
#: (llama-cpp-python: "Requested tokens (5000) exceed context window of 4096").
_CONTEXT_WINDOW = re.compile(r"exceeds? (?:the )?context window|context length exceeded|context_length_exceeded",
                             re.IGNORECASE)
#: Exceptions (by class name, anywhere in the cause chain) that mean "never connected".
_CONNECT_FAILURES = {"ConnectionRefusedError": "connection refused", "gaierror": "host name not found",
                     "ClientConnectorDNSError": "host name not found", "ConnectError": "could not connect",
                     "ClientConnectorError": "could not connect"}


class _EmptyReply(Exception):
    """A response with no choices, or a message with neither content nor tool calls."""

    def __init__(self, what: str, finish_reason: str | None) -> None:
        super().__init__(what)
        self.finish_reason = finish_reason


def _classes(names: tuple[str, ...]) -> tuple[type[BaseException], ...]:
    litellm = load_litellm()
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


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen and len(seen) < 12:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _connect_failure(exc: BaseException) -> str | None:
    """Why no connection could be made ("connection refused", ...), or None if one was."""
    status = _status_code(exc)
    if status is not None and status not in (500, 502, 503):  # litellm reports these as a 500
        return None
    found = [_CONNECT_FAILURES[cls.__name__] for link in _chain(exc) for cls in type(link).__mro__
             if cls.__name__ in _CONNECT_FAILURES]
    specific = [reason for reason in found if reason != "could not connect"]
    return next(iter(specific or found), None)


def is_transient(exc: BaseException) -> bool:
    """True when retrying the same call may succeed (rate limit, timeout, 5xx, network).

    Permanent classes are checked first because litellm's hierarchy nests some of them
    under generic ones; a missing API key is permanent even when litellm calls it a 500.
    """
    if isinstance(exc, _EmptyReply):
        return True
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


# --- what a failure says -----------------------------------------------------------------

def _first_line(exc: BaseException, call: dict[str, Any], limit: int = 300) -> str:
    text = str(exc).strip() or type(exc).__name__
    text = text.splitlines()[0] if text else text
    if call.get("api_key"):  # a provider may echo the key it was sent
        remember_secret(str(call["api_key"]), "api_key")
    return redact(text)[:limit]


def _provider(model: str) -> str:
    try:
        return str(load_litellm().get_llm_provider(model)[1])
    except Exception:  # noqa: BLE001 - a hint must never fail the error path
        return model.split("/", 1)[0] if "/" in model else "openai"


_KEY_OPTIONS = "--set api_key=... (CLI), RLM_SANDBOX_API_KEY, or RLM(api_key=...)"


def _auth_hint(model: str, call: dict[str, Any], detail: str, status: int | None, missing: bool) -> str:
    """Which key was used (or missing) and the one thing to do about it. Names only."""
    provider = _provider(model)
    variable = f"{provider.upper()}_API_KEY"
    if not missing:
        try:
            missing = bool(load_litellm().validate_environment(model=model, api_key=call.get("api_key"))
                           .get("missing_keys"))
        except Exception:  # noqa: BLE001 - a hint must never fail the error path
            pass
    if missing and not call.get("api_key"):
        try:
            names = list(load_litellm().validate_environment(model=model).get("missing_keys") or [])
        except Exception:  # noqa: BLE001 - a hint must never fail the error path
            names = []
        wanted = " and ".join(names) or variable
        return (f"authentication failed: no API key for provider {provider!r}. Set {wanted} in the "
                f"environment, or give a key with {_KEY_OPTIONS}.")
    code = f"HTTP {status}: " if status else ""
    where = f" and that api_base ({call['api_base']}) is the server the key belongs to" if call.get("api_base") else ""
    if call.get("api_key"):
        return (f"authentication failed: the provider refused the key given as api_key ({code}{detail}). "
                f"Check that key{where}.")
    source = variable if os.environ.get(variable) else "the provider's key variable in the environment"
    return (f"authentication failed: the provider refused the key in {source} ({code}{detail}). Check "
            f"that key{where}, or give another with {_KEY_OPTIONS}.")


def _transient_text(exc: BaseException, call: dict[str, Any], attempts: int, detail: str) -> str:
    status = _status_code(exc)
    tries = f"{attempts} attempt(s)"
    if isinstance(exc, _EmptyReply):
        what = f"{exc} (finish_reason={exc.finish_reason!r})" if exc.finish_reason else str(exc)
        if exc.finish_reason == "length":
            todo = "Raise max_tokens (root) or sub_max_tokens (sub-calls): a reasoning model can spend them all."
        elif exc.finish_reason == "content_filter":
            todo = "The provider filtered the output; change the query or the model."
        else:
            todo = "Check that the model (and api_base, if set) serves chat completions, or use another model."
        return f"the provider sent an empty reply on each of {tries}: {what}. {todo}"
    connect = _connect_failure(exc)
    if connect is not None:
        target = call.get("api_base") or f"the {_provider(call['model'])!r} provider"
        todo = ("Check that the server is running and api_base is right (--set api_base=... or "
                "RLM_SANDBOX_API_BASE)." if call.get("api_base") else "Check the network connection.")
        return f"could not connect to {target} ({connect}) after {tries}. {todo}"
    if isinstance(exc, _classes(("Timeout",))) or "timed out" in detail.lower():
        return (f"the provider did not answer within request_timeout_s={call.get('timeout')} "
                f"({tries}). Raise request_timeout_s, or check that the server is not stuck.")
    if status == 429 or isinstance(exc, _classes(("RateLimitError",))):
        return (f"the provider kept rate-limiting the calls ({tries}): {detail}. Lower max_concurrency "
                "(or raise max_retries to wait longer).")
    code = f" (HTTP {status})" if status else ""
    return f"the provider kept failing after {tries}{code}: {detail}. Try again later."


def _wrap(exc: BaseException, model: str, attempts: int, call: dict[str, Any]) -> LLMError:
    """Turn whatever litellm raised into an LLMError that says what happened and the one
    thing to do. `call` holds the call's options (api_base, api_key, timeout): the key's
    value is never shown, only where it came from."""
    litellm = load_litellm()
    status = _status_code(exc)
    detail = _first_line(exc, call)
    if is_transient(exc):
        kind: type[LLMError] = LLMEmptyReply if isinstance(exc, _EmptyReply) else LLMUnavailable
        return kind(f"model {model!r}: {_transient_text(exc, {**call, 'model': model}, attempts, detail)}",
                    model=model, transient=True, attempts=attempts, status_code=status)

    def is_a(name: str) -> bool:
        cls = getattr(litellm, name, None)
        return isinstance(cls, type) and isinstance(exc, cls)

    kind = LLMError
    if is_a("AuthenticationError") or _is_missing_key(exc):
        kind = LLMAuthenticationError
        text = _auth_hint(model, call, detail, status, missing=_is_missing_key(exc))
    elif is_a("PermissionDeniedError"):
        kind = LLMAuthenticationError
        text = (f"the key was refused access: {detail}. Check that the account behind the "
                "key may use this model.")
    elif is_a("ContextWindowExceededError") or _CONTEXT_WINDOW.search(str(exc)):
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
    error = kind(f"model {model!r}: {text}", model=model, transient=False, attempts=attempts,
                 status_code=status)
    error.detail = detail  # the provider's own words, without our advice (the loop quotes it)
    return error


# --- reading a response ---------------------------------------------------------------------

def _text_of(response: Any) -> str:
    """The reply's text; raises _EmptyReply for an answer that is not one."""
    choices = getattr(response, "choices", None) or []
    if not choices:
        raise _EmptyReply("the response had no choices", None)
    message = getattr(choices[0], "message", None)
    finish_reason = getattr(choices[0], "finish_reason", None)
    text = getattr(message, "content", None) if message is not None else None
    if isinstance(text, str):
        return text
    if getattr(message, "tool_calls", None):
        return ""
    raise _EmptyReply("the message's content was null, with no tool calls", finish_reason)


class _Spent:
    """Tokens and dollars of every answered attempt of one call.

    The cost is litellm's ``response_cost`` (cache-aware for models in its price map), except
    with a custom ``price``: litellm's per-call custom pricing knows only the input and output
    prices (it would charge cache reads as input, or at $0), so the cost is then computed here
    from the usage with :meth:`Price.cost`. A response without usage is counted locally and
    priced uncached, never called free.
    """

    def __init__(self, client: "LLMClient", model: str, messages: list[dict], price: Price | None) -> None:
        self.client, self.model, self.messages, self.price = client, model, messages, price
        self.input_tokens = self.output_tokens = self.cached_input_tokens = self.cache_write_tokens = 0
        self.cost_usd: float | None = 0.0

    def add(self, response: Any) -> None:
        usage = getattr(response, "usage", None)
        hidden = getattr(response, "_hidden_params", None)
        cost = hidden.get("response_cost") if isinstance(hidden, dict) and usage is not None else None
        cached = written = 0
        if usage is not None:
            input_tokens = int(getattr(usage, "prompt_tokens", 0) or 0)
            output_tokens = int(getattr(usage, "completion_tokens", 0) or 0)
            cached, written = cache_parts(usage, input_tokens)
        else:  # the provider did not say: count locally rather than call it free
            input_tokens = self.client.count_tokens(self.model, self.messages)
            output_tokens = self.client.count_tokens(self.model, text=_content_or_empty(response))
        if cost is None or self.price is not None:
            price = self.price or self.client.price_of(self.model)
            cost = price.cost(input_tokens, output_tokens, cached, written) if price is not None else None
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        self.cached_input_tokens += cached
        self.cache_write_tokens += written
        try:
            self.cost_usd = None if cost is None or self.cost_usd is None else self.cost_usd + max(0.0, float(cost))
        except (TypeError, ValueError):
            self.cost_usd = None


def _count(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 else None


def cache_parts(usage: Any, input_tokens: int) -> tuple[int, int]:
    """The prompt tokens read from and written to the provider's prompt cache, from litellm's
    normalised ``usage``: both are parts of ``input_tokens`` (``usage.prompt_tokens``).

    How litellm 1.110 reports them. OpenAI-style usage (OpenAI, DeepSeek, OpenAI-compatible
    servers): ``prompt_tokens`` is the whole prompt and ``prompt_tokens_details.cached_tokens``
    the part read from the cache; writes are not billed apart and not reported. Anthropic and
    Bedrock report ``input_tokens`` *without* the cache, beside ``cache_read_input_tokens`` and
    ``cache_creation_input_tokens``; litellm adds both to ``prompt_tokens`` and copies them to
    ``prompt_tokens_details.cached_tokens`` and ``.cache_creation_tokens`` (alias
    ``cache_write_tokens``), keeping the provider's names on the usage too. So the details come
    first and the provider's names stand in when the details lack them; both are capped by the
    prompt, so a server that reports more than it was sent cannot make a negative remainder.
    """
    details = getattr(usage, "prompt_tokens_details", None)
    cached = _count(getattr(details, "cached_tokens", None))
    if cached is None:
        cached = _count(getattr(usage, "cache_read_input_tokens", None))
    written = _count(getattr(details, "cache_write_tokens", None))
    if written is None:
        written = _count(getattr(details, "cache_creation_tokens", None))
    if written is None:
        written = _count(getattr(usage, "cache_creation_input_tokens", None))
    cached = min(cached or 0, input_tokens)
    return cached, min(written or 0, input_tokens - cached)


def _content_or_empty(response: Any) -> str:
    try:
        return _text_of(response)
    except _EmptyReply:
        return ""


#: litellm's words for "this model is not in my map", in releases that raise a bare Exception.
_NOT_MAPPED_TEXT = "isn't mapped yet"


def _model_info(model: str) -> dict[str, Any] | None:
    """litellm's map entry for ``model``, or None when litellm says it does not know the model.

    Only that answer means "unknown" (its ``ModelNotMappedError``, or the bare Exception with
    the same words that older releases raise): an unknown window leaves compaction off and an
    unknown price refuses a dollar budget, so any other failure (a litellm upgrade that changed
    the call, a bug) must not pass for one. It propagates, with a note saying what to do.
    """
    litellm = load_litellm()
    not_mapped = getattr(getattr(litellm, "exceptions", None), "ModelNotMappedError", None)
    try:
        return dict(litellm.get_model_info(model))
    except Exception as exc:
        if (isinstance(not_mapped, type) and isinstance(exc, not_mapped)) or _NOT_MAPPED_TEXT in str(exc):
            return None
        exc.add_note(f"litellm.get_model_info({model!r}) failed with something other than \"model not mapped\"; "
                     "a litellm release this package does not know? Pin litellm, or give context_window and "
                     "input_cost_per_token/output_cost_per_token so it is not asked.")
        raise


def model_window(model: str) -> int | None:
    """The model's context window in tokens from litellm's model map (its ``max_input_tokens``),
    or None for a model the map does not know (a local server, a new model)."""
    info = _model_info(model)
    if info is None:
        return None
    window = info.get("max_input_tokens") or info.get("max_tokens")
    return int(window) if isinstance(window, (int, float)) and window > 0 else None


# --- the client --------------------------------------------------------------------------

class LLMClient:
    """Calls models through litellm; sync `complete` and async `acomplete` twins.

    `completion_kwargs` go to every litellm call (api_base, api_key, temperature, ...);
    `timeout_s` bounds each attempt (a `timeout` in completion_kwargs wins).
    Up to `max_retries` retries follow a transient failure (only CONNECT_RETRIES after a
    failure to connect), waiting `backoff_initial_s * 2**n` (capped at `backoff_max_s`)
    plus random jitter, or the provider's Retry-After when longer. Every failure comes out
    as an `LLMError`. The client holds no connection state, so one instance may be shared.
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

    # -- prices and token counts (for budgets decided before a call is sent) --

    @staticmethod
    def price_of(model: str) -> Price | None:
        """litellm's per-token price for `model` (with its cache read and write prices when the
        map lists them), or None when its price map has none."""
        info = _model_info(model)
        if info is None:
            return None
        given, made = info.get("input_cost_per_token"), info.get("output_cost_per_token")
        if not isinstance(given, (int, float)) or not isinstance(made, (int, float)):
            return None
        read, write = info.get("cache_read_input_token_cost"), info.get("cache_creation_input_token_cost")
        return Price(float(given), float(made),
                     cached_input_per_token=float(read) if isinstance(read, (int, float)) else None,
                     cache_write_per_token=float(write) if isinstance(write, (int, float)) else None)

    @staticmethod
    def count_tokens(model: str, messages: list[dict] | None = None, *, text: str | None = None) -> int:
        """Tokens in `messages` (or `text`) by litellm's token counter, never over the network.

        litellm picks the model's tokenizer; for models whose tokenizer it would download from
        Hugging Face (llama, command-r), its bundled default tokenizer counts instead.
        """
        litellm = load_litellm()
        kind = getattr(litellm.utils, "huggingface_tokenizer_kind", None)
        name = model if kind is not None and kind(model) not in ("llama2", "llama3", "cohere") else ""
        try:
            if text is not None:
                return int(litellm.token_counter(model=name, text=text))
            return int(litellm.token_counter(model=name, messages=messages or []))
        except Exception:  # noqa: BLE001 - an odd message shape: count its characters instead
            chars = len(text) if text is not None else sum(len(str(m.get("content") or "")) for m in messages or [])
            return chars // 2 + 1

    # -- shared pieces --

    def _kwargs(self, model: str, messages: list[dict], max_tokens: int | None,
                price: Price | None, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """One call's litellm arguments: the client's, then the call's ``options`` (they win), then
        what the engine controls (length, retries, streaming, prices), which nothing overrides."""
        kwargs: dict[str, Any] = {**self.completion_kwargs, **check_model_options(options, "options"),
                                  "model": model, "messages": messages}
        kwargs.setdefault("timeout", self.timeout_s)
        if max_tokens is not None:
            kwargs["max_tokens"] = max_tokens
        if price is not None:  # litellm's custom pricing, for its own logging; _Spent prices the call itself
            kwargs["input_cost_per_token"] = price.input_per_token
            kwargs["output_cost_per_token"] = price.output_per_token
        kwargs["num_retries"] = 0   # litellm's own retry loop
        kwargs["max_retries"] = 0   # the OpenAI SDK client's retry loop
        kwargs["stream"] = False
        return kwargs

    def _retrying_kwargs(self, causes: list[RetryCause], on_retry: OnRetry | None = None) -> dict[str, Any]:
        """tenacity's arguments; each retried failure is noted in ``causes`` (the events show them)
        and told to ``on_retry`` as it happens."""
        from tenacity import retry_if_exception, stop_after_attempt, stop_any, wait_exponential, wait_random

        backoff = wait_exponential(multiplier=self.backoff_initial_s, max=self.backoff_max_s) + \
            wait_random(0, self.backoff_initial_s)

        def wait(retry_state: Any) -> float:
            delay = backoff(retry_state)
            outcome = retry_state.outcome
            hint = _retry_after_s(outcome.exception()) if outcome is not None else None
            if hint is not None:
                delay = max(delay, min(hint, self.backoff_max_s) + random.uniform(0, 0.1))
            return delay

        def connect_failed(retry_state: Any) -> bool:
            outcome = retry_state.outcome
            return (outcome is not None and outcome.failed and retry_state.attempt_number > CONNECT_RETRIES
                    and _connect_failure(outcome.exception()) is not None)

        def note(retry_state: Any) -> None:
            outcome, sleep = retry_state.outcome, retry_state.next_action
            error = outcome.exception() if outcome is not None else None
            cause = f"{type(error).__name__}: {redact(_first_line(error, {}, 200))}" if error else "unknown"
            causes.append(RetryCause(cause=cause, wait_s=round(float(getattr(sleep, "sleep", 0.0) or 0.0), 3)))
            if on_retry is not None:
                on_retry(causes[-1], retry_state.attempt_number, self.max_retries + 1)

        # tenacity calls any callable of the retry state as a stop; its stubs name only its stop_base classes
        stop = stop_any(stop_after_attempt(self.max_retries + 1), connect_failed)  # type: ignore[arg-type]  # see above
        return {"stop": stop, "wait": wait,
                "retry": retry_if_exception(is_transient), "reraise": True, "before_sleep": note}

    def _done(self, text: str, spent: _Spent, started: float, attempts: int,
              causes: list[RetryCause], finish_reason: str | None) -> Completion:
        return Completion(text=text, model=spent.model, input_tokens=spent.input_tokens,
                          output_tokens=spent.output_tokens, cost_usd=spent.cost_usd,
                          duration_s=time.perf_counter() - started, retries=attempts - 1,
                          retry_causes=tuple(causes), finish_reason=finish_reason,
                          cached_input_tokens=spent.cached_input_tokens, cache_write_tokens=spent.cache_write_tokens)

    # -- the twins --

    def complete(self, model: str, messages: list[dict], *, max_tokens: int | None = None,
                 price: Price | None = None, options: dict[str, Any] | None = None) -> Completion:
        """Call `model` with `messages`; retry transient failures; raise LLMError.

        `max_tokens` bounds the reply; `price` is a custom price (litellm's custom pricing)
        for a model litellm has no price for, or whose price you know better; `options` are
        more litellm options for this call (see `models.options` for what is refused).
        """
        from tenacity import Retrying

        litellm = load_litellm()
        kwargs = self._kwargs(model, messages, max_tokens, price, options)
        spent = _Spent(self, model, messages, price)
        started = time.perf_counter()
        attempts, causes = 0, list[RetryCause]()
        try:
            for attempt in Retrying(**self._retrying_kwargs(causes)):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    response = litellm.completion(**kwargs)
                    spent.add(response)
                    text = _text_of(response)
        except Exception as exc:  # every failure leaves as LLMError
            raise _spent_on(_wrap(exc, model, attempts, kwargs), spent, causes) from exc
        return self._done(text, spent, started, attempts, causes, _finish_reason(response))

    async def acomplete(self, model: str, messages: list[dict], *, max_tokens: int | None = None,
                        price: Price | None = None, options: dict[str, Any] | None = None,
                        on_retry: OnRetry | None = None) -> Completion:
        """Async twin of `complete`; runs on the process's litellm loop, whatever loop awaits it.
        ``on_retry(cause, attempt, max_attempts)`` is called before each retry's wait."""
        return await on_model_loop(self._acomplete(model, messages, max_tokens, price, options, on_retry))

    async def _acomplete(self, model: str, messages: list[dict], max_tokens: int | None,
                         price: Price | None, options: dict[str, Any] | None,
                         on_retry: OnRetry | None = None) -> Completion:
        from tenacity import AsyncRetrying

        litellm = load_litellm()
        kwargs = self._kwargs(model, messages, max_tokens, price, options)
        spent = _Spent(self, model, messages, price)
        started = time.perf_counter()
        attempts, causes = 0, list[RetryCause]()
        try:
            async for attempt in AsyncRetrying(**self._retrying_kwargs(causes, on_retry)):
                with attempt:
                    attempts = attempt.retry_state.attempt_number
                    response = await litellm.acompletion(**kwargs)
                    spent.add(response)
                    text = _text_of(response)
        except Exception as exc:  # every failure leaves as LLMError
            raise _spent_on(_wrap(exc, model, attempts, kwargs), spent, causes) from exc
        return self._done(text, spent, started, attempts, causes, _finish_reason(response))


def _spent_on(error: LLMError, spent: _Spent, causes: list[RetryCause]) -> LLMError:
    """A failed call may still have been paid for (empty replies): say how much, and why
    each earlier attempt was retried."""
    error.input_tokens, error.output_tokens, error.cost_usd = spent.input_tokens, spent.output_tokens, spent.cost_usd
    error.cached_input_tokens, error.cache_write_tokens = spent.cached_input_tokens, spent.cache_write_tokens
    error.retry_causes = tuple(causes)
    return error


def _finish_reason(response: Any) -> str | None:
    choices = getattr(response, "choices", None) or []
    reason = getattr(choices[0], "finish_reason", None) if choices else None
    return str(reason) if reason is not None else None

