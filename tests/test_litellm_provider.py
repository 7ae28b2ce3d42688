"""The litellm custom provider: ``litellm.completion(model="rlm-sandbox/<model>")`` runs an RLM
in-process, through litellm's own code path, with a scripted root model and a real sandbox."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from rlm_sandbox.testing import ScriptedModel

pytestmark = pytest.mark.docker

CONTEXT = "The answer hides in this context."


def root_script() -> list[str]:
    return ["```repl\nprint(context)\nprint(llm_query('what is it?'))\n```", "FINAL(42)"]


@pytest.fixture()
def litellm_module(sandbox_image: str) -> Any:
    import litellm

    from rlm_sandbox.integrations.litellm_provider import PROVIDER, register

    register(sandbox="docker")
    assert [item["provider"] for item in litellm.custom_provider_map].count(PROVIDER) == 1
    yield litellm
    litellm.custom_provider_map = [item for item in litellm.custom_provider_map if item["provider"] != PROVIDER]


def messages(question: str = "What number?") -> list[dict[str, str]]:
    return [{"role": "system", "content": CONTEXT}, {"role": "user", "content": question}]


def test_completion_runs_an_rlm_with_the_messages_as_query_and_context(litellm_module: Any):
    with ScriptedModel(root_script()) as root, ScriptedModel(responder=lambda m: "a sub answer") as sub:
        reply = litellm_module.completion(model=f"rlm-sandbox/{root.model}", messages=messages(),
                                          rlm={"sub_model": sub.model})
        assert reply.choices[0].message.content == "42"
        assert reply.choices[0].finish_reason == "stop"
        assert reply.rlm["status"] == "completed" and reply.rlm["sub_calls"] == 1
        assert "What number?" in root.calls[0][-1]["content"]  # the last user message is the query
        assert CONTEXT in root.calls[1][-1]["content"]  # the system message was the sandbox's context
        assert sub.call_count == 1
        root_tokens = sum(len(call) for call in root.calls)
        assert reply.usage.prompt_tokens > root_tokens  # counts the sub-call as well as the root's
        assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_acompletion_is_the_async_twin(litellm_module: Any):
    with ScriptedModel(["```repl\nprint(len(context))\n```", "FINAL(7)"]) as root:
        reply = asyncio.run(litellm_module.acompletion(model=f"rlm-sandbox/{root.model}", messages=messages()))
        assert reply.choices[0].message.content == "7"


def test_a_run_ended_by_a_limit_finishes_with_length(litellm_module: Any):
    with ScriptedModel(responder=lambda m: "```repl\nprint(1)\n```") as root:
        reply = litellm_module.completion(model=f"rlm-sandbox/{root.model}", messages=messages(),
                                          rlm={"max_iterations": 1})
        assert reply.choices[0].finish_reason == "length"
        assert reply.rlm["status"] != "completed"


def test_messages_that_do_not_end_with_a_question_are_a_bad_request(litellm_module: Any):
    with pytest.raises(litellm_module.BadRequestError, match="last message must be the user's question"):
        litellm_module.completion(model="rlm-sandbox/scripted/none",
                                  messages=[{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])
    with pytest.raises(litellm_module.BadRequestError, match="unknown option"):
        litellm_module.completion(model="rlm-sandbox/scripted/none", messages=messages(), rlm={"colour": "blue"})


def test_a_run_that_failed_raises_instead_of_answering(litellm_module: Any):
    """A failed run is an error, as `serve` answers it (502), never a reply that looks like an
    answer; its reason is masked for secrets (the control: a completed run answers, above)."""
    refusal = litellm_module.AuthenticationError("key sk-live-SECRET123456789 refused", llm_provider="openai",
                                                 model="gpt-x")
    with ScriptedModel([refusal]) as root:
        with pytest.raises(litellm_module.APIError) as raised:
            litellm_module.completion(model=f"rlm-sandbox/{root.model}", messages=messages(),
                                      rlm={"max_retries": 0})
    assert raised.value.status_code == 502 and "the run failed" in str(raised.value)


def test_the_runs_cached_prompt_tokens_are_reported_in_openais_field(litellm_module: Any):
    from rlm_sandbox.testing import Reply

    script = [Reply("```repl\nprint(len(context))\n```", input_tokens=3000, output_tokens=9, cached_tokens=2048),
              Reply("FINAL(7)", input_tokens=3100, output_tokens=4, cached_tokens=2944)]
    with ScriptedModel(script) as root:
        reply = litellm_module.completion(model=f"rlm-sandbox/{root.model}", messages=messages())
    assert reply.usage.prompt_tokens == 6100
    assert reply.usage.prompt_tokens_details.cached_tokens == 2048 + 2944
