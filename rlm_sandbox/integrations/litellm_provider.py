"""An RLM as a litellm model: ``litellm.completion(model="rlm-sandbox/gpt-4o-mini", messages=...)``.

A litellm custom provider (``litellm.custom_provider_map``) that runs the RLM in-process,
through the public API, with the same mapping of messages as ``rlm-sandbox serve`` (the
last user message is the query, everything before it the context: :mod:`rlm_sandbox.chat`).
:func:`register` adds it to litellm; a litellm proxy names :data:`handler` in its config.
Settings for the runs come from the provider's options, then ``RLM_SANDBOX_*`` variables
and ``.env``, as for any ``RLM``; a call may add ``rlm={...}`` (for example a budget).

The reply's ``finish_reason`` is ``stop`` for a FINAL answer and ``length`` when a limit
ended the run; a run that failed (status ``error``) raises litellm's ``APIError`` (502); ``usage``
counts every call of the run; ``reply.rlm`` (also in
``_hidden_params["rlm"]``) holds status, answer_from, iterations, sub_calls and cost_usd.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import RLM
from ..chat import ChatMappingError, messages_to_run
from ..models.runtime import load_litellm
from ..redaction import redact

_litellm = load_litellm()  # the package's way: offline price map, no network at import
if TYPE_CHECKING:  # the same classes, named statically (mypy takes litellm as Any: pyproject's [tool.mypy])
    from litellm import CustomLLM, ModelResponse, Usage
else:
    CustomLLM, ModelResponse, Usage = _litellm.CustomLLM, _litellm.ModelResponse, _litellm.Usage
BadRequestError, APIError = _litellm.BadRequestError, _litellm.APIError

__all__ = ["PROVIDER", "RLMProvider", "handler", "register"]

#: The prefix of the models this provider answers: ``rlm-sandbox/<root model>``.
PROVIDER = "rlm-sandbox"


class RLMProvider(CustomLLM):
    """Runs an RLM for each completion; ``options`` are ``RLM`` keyword arguments for every run."""

    def __init__(self, **options: Any) -> None:
        super().__init__()
        if "model" in options:
            raise TypeError("the root model is the call's: model='rlm-sandbox/<model>', not an option")
        self.options = options

    def completion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> ModelResponse:
        rlm, query, context = self._prepare(model, messages, kwargs)
        return self._fill(kwargs.get("model_response"), model, rlm.run(query, context))

    async def acompletion(self, model: str, messages: list, *args: Any, **kwargs: Any) -> ModelResponse:
        rlm, query, context = self._prepare(model, messages, kwargs)
        return self._fill(kwargs.get("model_response"), model, await rlm.arun(query, context))

    def _prepare(self, model: str, messages: list, kwargs: dict[str, Any]) -> tuple[Any, str, Any]:
        root = model.split("/", 1)[1] if model.startswith(PROVIDER + "/") else model
        try:
            chat = messages_to_run(messages)
        except ChatMappingError as exc:
            raise BadRequestError(f"{exc} ({exc.param})", model=model, llm_provider=PROVIDER) from None
        extra = dict((kwargs.get("optional_params") or {}).get("rlm") or {})
        if "context" in extra and chat.context is not None:
            raise BadRequestError("the context is given twice: as messages before the question and as "
                                  "rlm['context']; give it one way", model=model, llm_provider=PROVIDER)
        context = extra.pop("context", chat.context)
        try:
            rlm = RLM(**{**self.options, **extra, "model": root})
        except (TypeError, ValueError) as exc:
            raise BadRequestError(f"rlm-sandbox option: {exc}", model=model, llm_provider=PROVIDER) from None
        return rlm, chat.query, context

    @staticmethod
    def _fill(response: ModelResponse | None, model: str, result: Any) -> ModelResponse:
        if result.status == "error":  # a failed run is an error, as `serve` answers it (502), never a reply
            raise APIError(status_code=502, message=f"the run failed: {redact(result.error or 'no reason given')}",
                           llm_provider=PROVIDER, model=model)
        response = response if response is not None else ModelResponse()
        response.model = f"{PROVIDER}/{model}" if not model.startswith(PROVIDER + "/") else model
        response.choices[0].message.content = result.answer
        response.choices[0].finish_reason = "stop" if result.status == "completed" else "length"
        cached = result.total_cached_input_tokens  # OpenAI's shape: a part of prompt_tokens
        response.usage = Usage(prompt_tokens=result.total_input_tokens,
                               completion_tokens=result.total_output_tokens,
                               total_tokens=result.total_input_tokens + result.total_output_tokens,
                               prompt_tokens_details={"cached_tokens": cached} if cached else None)
        info = {"status": result.status, "answer_from": result.answer_from, "iterations": result.iterations,
                "sub_calls": result.sub_calls, "cost_usd": result.cost_usd,
                "error": redact(result.error) if result.error else None}
        response._hidden_params["rlm"] = info
        response.rlm = info
        return response


#: The provider with default options, for ``custom_provider_map`` and litellm proxy configs.
handler = RLMProvider()


def register(**options: Any) -> RLMProvider:
    """Make ``rlm-sandbox/<model>`` a litellm model (``options`` go to every run); replaces an
    earlier registration, keeps every other provider."""
    provider = RLMProvider(**options) if options else handler
    _litellm.custom_provider_map = [*(item for item in _litellm.custom_provider_map
                                      if item.get("provider") != PROVIDER),
                                    {"provider": PROVIDER, "custom_handler": provider}]
    return provider
