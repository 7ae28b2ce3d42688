"""Real models are messy (issue 9): long replies, small windows, cut-offs, templates that
drop the system message, and models that make no progress. Real Docker sandboxes, litellm's
real code path (ScriptedModel), and real HTTP (OpenAICompatibleServer) where a provider's
own behaviour matters: a window that refuses long requests, finish reasons, options."""

from __future__ import annotations

import itertools
from typing import Any

import litellm
import pytest

from rlm_sandbox import RLM
from rlm_sandbox.config import Settings
from rlm_sandbox.errors import SettingsError
from rlm_sandbox.testing import OpenAICompatibleServer, Reply, ScriptedModel, estimate_tokens
from tests.rlm_helpers import make_rlm as build_rlm
from tests.rlm_helpers import user_messages

pytestmark = pytest.mark.docker


@pytest.fixture
def make_rlm(sandbox_factory):
    return lambda root, sub=None, **options: build_rlm(sandbox_factory, root, sub, **options)


def events(result: Any, kind: str, run_id: str | None = None) -> list[Any]:
    root_id = result.trajectory[0].run_id
    return [e for e in result.trajectory if e.event == kind and e.run_id == (run_id or root_id)]


def feedback(model: ScriptedModel, turn: int) -> str:
    return user_messages(model.calls[turn])[-1]


# -- 1. reply length and provider options, per model ------------------------------------------

def served_rlm(sandbox_factory: Any, server: OpenAICompatibleServer, **options: Any) -> RLM:
    return RLM(model="openai/root-model", sandbox_factory=sandbox_factory, api_base=server.url, api_key="sk-test",
               **options)


@pytest.mark.loop
def test_model_options_and_max_tokens_reach_the_provider_per_role(sandbox_factory):
    def answer(messages: list[dict]) -> Reply:
        if messages[0]["role"] == "system":
            return Reply("```repl\nprint(llm_query('hi'))\n```" if len(messages) == 2 else "FINAL(done)")
        return Reply("sub says hi")

    with OpenAICompatibleServer(answer) as server:
        rlm = served_rlm(sandbox_factory, server, sub_model="openai/sub-model", max_tokens=300, sub_max_tokens=50,
                         model_options={"top_p": 0.5, "stop": ["<END>"]},
                         sub_model_options={"presence_penalty": 0.25})
        result = rlm.run("q", "ctx")
        bodies = {request.body["model"]: request.body for request in server.requests}
    assert result.status == "completed", result.error
    root, sub = bodies["root-model"], bodies["sub-model"]
    assert (root["top_p"], root["stop"], root["max_tokens"]) == (0.5, ["<END>"], 300)
    assert "presence_penalty" not in root
    assert (sub["presence_penalty"], sub["max_tokens"]) == (0.25, 50) and "top_p" not in sub
    start = result.trajectory[0]
    assert start.settings["model_options"] == {"top_p": 0.5, "stop": ["<END>"]}  # recorded with the run


@pytest.mark.parametrize("options, named", [
    ({"max_tokens": 10}, "set max_tokens (root) or sub_max_tokens"),
    ({"max_completion_tokens": 10}, "set max_tokens (root) or sub_max_tokens"),
    ({"api_key": "sk-live-abcdef123456"}, "looks like a credential"),
    ({"extra_headers": {"Authorization": "Bearer sk-live-abcdef123456"}}, "extra_headers.Authorization"),
    ({"num_retries": 9}, "set max_retries"),
    ({"timeout": 1}, "set request_timeout_s"),
    ({"input_cost_per_token": 0}, "so cost limits see the price"),
    ({"cache_read_input_token_cost": 0}, "set cached_input_cost_per_token / sub_cached_input_cost_per_token"),
    ({"cache_creation_input_token_cost": 0}, "set cache_write_cost_per_token"),
    ({"n": 3}, "reserves budget for one"),
    ({"supports_system_message": False}, "set supports_system_message=false"),
])
def test_options_the_host_controls_are_refused_and_never_echoed(options, named):
    with pytest.raises(SettingsError) as caught:
        Settings(model_options=options)
    assert named in str(caught.value) and "model_options" in str(caught.value)
    assert "sk-live" not in str(caught.value)  # a key given by mistake is never shown


def test_model_options_from_the_environment_are_json(monkeypatch):
    monkeypatch.setenv("RLM_SANDBOX_SUB_MODEL_OPTIONS", '{"top_k": 5, "stop": ["\\n\\n"]}')
    assert Settings().sub_model_options == {"top_k": 5, "stop": ["\n\n"]}
    monkeypatch.setenv("RLM_SANDBOX_SUB_MODEL_OPTIONS", "top_k=5")
    with pytest.raises(SettingsError, match="must be a JSON object"):
        Settings()


# -- 2. chat templates that drop the system message --------------------------------------------

@pytest.mark.loop
def test_the_system_prompt_can_be_folded_into_the_first_user_message(make_rlm):
    root = ScriptedModel(["```repl\nprint(len(context))\n```", "FINAL(ok)"])
    result = make_rlm(root, supports_system_message=False).run("How long is it?", "abcdef")
    assert result.status == "completed"
    first = root.calls[0]
    assert [m["role"] for m in first] == ["user"]
    assert "You answer a query about a context" in first[0]["content"]
    assert "Query: How long is it?" in first[0]["content"]
    assert [m["role"] for m in root.calls[1]] == ["user", "assistant", "user"]  # roles still alternate
    requests = events(result, "model_request")
    assert requests[0].base == 0 and requests[1].base == 1


def test_the_probe_tells_a_template_that_drops_the_system_message():
    from rlm_sandbox.models.probe import check_system_message

    def drops(messages: list[dict]) -> Reply:  # what a template without a system role does
        seen = [m for m in messages if m["role"] != "system"]
        return Reply("I do not know any code word.", input_tokens=estimate_tokens(seen[0]["content"]))

    def keeps(messages: list[dict]) -> Reply:
        word = messages[0]["content"].split("The code word is ")[1].split(".")[0]
        return Reply(word)

    with OpenAICompatibleServer(drops) as bad, OpenAICompatibleServer(keeps) as good:
        dropped = check_system_message("openai/test-model", completion_kwargs={"api_base": bad.url, "api_key": "sk-x"})
        seen = check_system_message("openai/test-model", completion_kwargs={"api_base": good.url, "api_key": "sk-x"})
        assert len(bad.requests) == len(good.requests) == 1  # asked once
    assert dropped.seen is False and "drops it" in dropped.detail
    assert seen.seen is True


# -- 3. the root conversation is kept inside the model's window --------------------------------

class TooLong(Exception):
    """An OpenAI-style refusal of an over-long request, as vLLM and llama.cpp's servers send it."""

    status_code = 400


def window_server(window: int, script: Any) -> OpenAICompatibleServer:
    """An endpoint that refuses, like a real provider, every request over ``window`` tokens (its own count)."""

    def answer(messages: list[dict]) -> Reply:
        tokens = sum(estimate_tokens(str(m.get("content") or "")) + 4 for m in messages)
        if tokens > window:
            return Reply(error=TooLong(f"This model's maximum context length is {window} tokens. However, your "
                                       f"messages resulted in {tokens} tokens. Please reduce the length."))
        return Reply(next(script), input_tokens=tokens)

    return OpenAICompatibleServer(answer)


def reading_script(steps: int, finish: str) -> Any:
    """A model that reads the context in slices of ~450 characters of output, then finishes."""
    first = ["```repl\nwords = context.split()\nprint(len(words))\n```"]
    reads = [f"```repl\nprint(' '.join(words[{i * 60}:{(i + 1) * 60}]))\n```" for i in range(steps)]
    return iter(first + reads + [finish])


CONTEXT = " ".join(f"word{i:04d}" for i in range(2000))


@pytest.mark.loop
def test_a_long_run_is_folded_to_stay_inside_a_small_window(sandbox_factory):
    script = reading_script(12, "```repl\nFINAL(str(len(words)))\n```")  # the REPL kept `words` from turn 1
    with window_server(2500, script) as server:
        result = served_rlm(sandbox_factory, server, context_window=2500).run("How many words?", CONTEXT)
        sent = [sum(estimate_tokens(str(m.get("content") or "")) + 4 for m in r.messages) for r in server.requests]
    assert (result.status, result.answer) == ("completed", "2000"), result.error
    assert max(sent) <= 2500 and len(sent) == result.iterations  # never refused, never retried
    compactions = events(result, "compaction")
    assert compactions and all(c.reason == "threshold" and c.window_source == "setting" for c in compactions)
    assert compactions[0].folded[0] == 1 and compactions[-1].kept[-1] == compactions[-1].iteration - 1
    digest = server.requests[-1].messages[1]["content"]
    assert digest.startswith("Query: How many words?") and "folded into this digest" in digest
    assert "words = context.split()" in digest and "Variables in the REPL now" in digest and "words" in digest
    seen: list[dict] = []  # the trace still rebuilds every request exactly
    for request, event in zip(server.requests, events(result, "model_request"), strict=False):
        seen = seen[:event.base] + event.messages
        assert seen == request.messages


@pytest.mark.loop
def test_the_answer_now_request_is_trimmed_the_same_way(sandbox_factory):
    script = reading_script(20, "FINAL(unused)")
    with window_server(2500, script) as server:
        result = served_rlm(sandbox_factory, server, context_window=2500, max_iterations=8).run("q", CONTEXT)
        last = server.requests[-1]
    assert result.status == "max_iterations" and result.answer_from == "answer_now"
    assert "used every iteration" in last.messages[-1]["content"]
    assert [m["role"] for m in last.messages[1:]] == ["user", "assistant"] * ((len(last.messages) - 1) // 2) + ["user"]
    assert not [e for e in events(result, "model_reply") if e.outcome == "error"]  # nothing was refused


@pytest.mark.loop
def test_an_unknown_window_is_learnt_from_the_providers_refusal(sandbox_factory):
    script = reading_script(17, "```repl\nFINAL(str(len(words)))\n```")  # ~2,800 tokens by the end
    with window_server(2500, script) as server:  # no context_window: litellm does not know this model
        result = served_rlm(sandbox_factory, server).run("How many words?", CONTEXT)
    assert (result.status, result.answer) == ("completed", "2000"), result.error
    refused = [e for e in events(result, "model_reply") if e.outcome == "error"]
    assert len(refused) == 1 and "context" in refused[0].error  # once: then the window is known
    overflow = events(result, "compaction")[0]
    assert (overflow.reason, overflow.window_source, overflow.window) == ("overflow", "provider", 2500)


@pytest.mark.loop
def test_an_overflow_that_folding_cannot_fix_blames_the_engine_not_the_user(sandbox_factory):
    with window_server(600, iter(["FINAL(never)"])) as server:  # smaller than the system prompt alone
        result = served_rlm(sandbox_factory, server).run("q", "ctx")
    assert result.status == "error"
    assert "the run's own conversation with the root model does not fit" in result.error
    assert "system prompt and the query" in result.error and "context_window" in result.error
    assert "send less text per call" not in result.error.lower()


# -- 4. replies cut off at the token limit -------------------------------------------------------

@pytest.mark.loop
def test_a_cut_off_reply_runs_its_complete_blocks_and_reports_the_cut_one(make_rlm):
    root = ScriptedModel([Reply("```repl\nprint('first ran')\n```\n```repl\nrows = [1, 2,", finish_reason="length"),
                          "FINAL(done)"])
    result = make_rlm(root, max_tokens=64).run("q", "ctx")
    told = feedback(root, 1)
    assert "first ran" in told
    assert "cut off at the token limit (max_tokens=64)" in told and "was NOT run" in told
    assert "no ```repl block" not in told
    assert result.code_executions == 1 and not events(result, "nudge")
    cut = events(result, "reply_cut")[0]
    assert (cut.finish_reason, cut.unclosed_block, cut.blocks_run, cut.max_tokens) == ("length", True, 1, 64)
    assert events(result, "model_reply")[0].finish_reason == "length"


@pytest.mark.loop
def test_a_reply_whose_only_block_was_cut_is_not_told_it_had_no_block(make_rlm):
    root = ScriptedModel([Reply("Let me look.\n```repl\nfor line in context.splitlines():\n    if",
                                finish_reason="length"),
                          "FINAL(done)"])
    make_rlm(root).run("q", "ctx")
    told = feedback(root, 1)
    assert "cut off" in told and "was NOT run" in told and "No complete block ran" in told
    assert "no ```repl block" not in told


@pytest.mark.loop
def test_a_final_cut_off_mid_answer_is_not_taken(make_rlm):
    root = ScriptedModel([Reply("FINAL(The answer is the long list: alpha, beta, gam", finish_reason="length"),
                          "FINAL(short)"])
    result = make_rlm(root).run("q", "ctx")
    assert (result.status, result.answer) == ("completed", "short")
    rejected = events(result, "final_rejected")[0]
    assert rejected.reason == "cut_off" and "FINAL_VAR" in feedback(root, 1)


@pytest.mark.loop
def test_finish_reason_length_over_real_http(sandbox_factory):
    script = iter([Reply("```repl\nx = 1\n```\n```repl\ny = [", finish_reason="length"), Reply("FINAL(ok)")])
    with OpenAICompatibleServer(lambda messages: next(script)) as server:
        result = served_rlm(sandbox_factory, server).run("q", "ctx")
        told = server.requests[1].messages[-1]["content"]
    assert result.status == "completed" and "cut off at the token limit" in told
    assert events(result, "reply_cut")[0].finish_reason == "length"


# -- 5. a model that makes no progress -----------------------------------------------------------

@pytest.mark.loop
def test_the_same_reply_twice_ends_the_run_as_stalled(make_rlm):
    root = ScriptedModel(responder=lambda messages: "```repl\nprint(context[:5])\n```")
    result = make_rlm(root, max_iterations=20).run("q", "hello world")
    assert result.status == "stalled" and result.iterations == 2
    assert root.call_count == 3  # two steps and one answer-now call, not 20 paid calls of nothing
    assert result.answer_from == "answer_now" and "stall_repeats=2" in result.error
    stalled = events(result, "stalled")[0]
    assert (stalled.rule, stalled.count, stalled.setting) == ("repeated_reply", 2, "stall_repeats=2")
    assert "same reply 2 times in a row" in user_messages(root.calls[2])[-1]


@pytest.mark.loop
def test_a_repeated_failing_reply_is_noticed_despite_new_cell_names(make_rlm):
    root = ScriptedModel(responder=lambda messages: "```repl\nprint(undefined_name)\n```")
    result = make_rlm(root).run("q", "ctx")
    assert result.status == "stalled" and result.iterations == 2


@pytest.mark.loop
def test_replies_without_code_or_final_end_the_run_as_stalled(make_rlm):
    thoughts = itertools.count()
    root = ScriptedModel(responder=lambda messages: f"Thinking, step {next(thoughts)}.")
    result = make_rlm(root, stall_idle_replies=4).run("q", "ctx")
    assert result.status == "stalled" and result.iterations == 4
    assert events(result, "stalled")[0].rule == "idle_replies" and "stall_idle_replies=4" in result.error


@pytest.mark.loop
def test_the_stall_rules_can_be_turned_off(make_rlm):
    root = ScriptedModel(responder=lambda messages: "Hmm.")
    result = make_rlm(root, max_iterations=5, stall_repeats=0, stall_idle_replies=0).run("q", "ctx")
    assert result.status == "max_iterations" and result.iterations == 5


@pytest.mark.loop
def test_progress_is_not_a_stall(make_rlm):
    root = ScriptedModel(["```repl\nn = 1\nprint(n)\n```", "```repl\nn += 1\nprint(n)\n```",
                          "```repl\nn += 1\nprint(n)\n```", "FINAL(n)"])
    result = make_rlm(root).run("q", "ctx")
    assert (result.status, result.answer) == ("completed", "3")


# -- 6. every model request is in the trace, and usage counts attempts ---------------------------

@pytest.mark.loop
def test_every_root_request_is_an_event_and_usage_counts_attempts(make_rlm):
    root = ScriptedModel([
        litellm.RateLimitError("slow down", llm_provider="scripted", model="m"),  # retried: 2 attempts, 1 call
        "```repl\nx = undefined_name\n```\nFINAL(premature)",  # a FINAL refused because its code failed
        Reply("```repl\nrows = [", finish_reason="length"),  # cut off
        "```repl\nprint(1)\n```",
        "best guess",  # the answer-now reply
    ])
    result = make_rlm(root, max_iterations=3).run("q", "ctx")
    assert (result.status, result.answer, result.answer_from) == ("max_iterations", "best guess", "answer_now")
    requests, replies = events(result, "model_request"), events(result, "model_reply")
    assert len(requests) == len(replies) == 4 and sum(r.attempts for r in replies) == root.call_count == 5
    turns = [(e.iteration, e.purpose) for e in events(result, "iteration")]
    assert turns == [(1, "step"), (2, "step"), (3, "step"), (4, "answer_now")]
    assert [(r.iteration, r.purpose) for r in requests][-1] == (4, "answer_now")
    assert [e.reason for e in events(result, "final_rejected")] == ["code_failed"]
    usage = next(u for u in result.usage if u.role == "root")
    assert (usage.calls, usage.attempts, usage.failed_calls) == (4, 5, 0)


@pytest.mark.loop
def test_a_failed_root_call_is_counted_as_an_attempt_and_a_failure(make_rlm):
    root = ScriptedModel([litellm.AuthenticationError("bad key", llm_provider="scripted", model="m")])
    result = make_rlm(root).run("q", "ctx")
    assert result.status == "error"
    usage = next(u for u in result.usage if u.role == "root")
    assert (usage.calls, usage.attempts, usage.failed_calls) == (0, 1, 1)
    assert [r.outcome for r in events(result, "model_reply")] == ["error"]


@pytest.mark.loop
def test_a_missing_final_var_is_an_event(make_rlm):
    root = ScriptedModel(["FINAL_VAR(nothing_here)", "FINAL(ok)"])
    result = make_rlm(root).run("q", "ctx")
    rejected = events(result, "final_rejected")
    assert [r.reason for r in rejected] == ["no_such_variable"] and "nothing_here" in rejected[0].problem


# -- 7. a SyntaxError is shown once, with its line -------------------------------------------------

@pytest.mark.loop
def test_a_syntax_error_is_shown_once_with_its_line(make_rlm):
    root = ScriptedModel(["```repl\nprint('before')\nx = (1,\n```", "FINAL(ok)"])
    make_rlm(root).run("q", "ctx")
    told = feedback(root, 1)
    assert told.count("was never closed") == 1
    assert "x = (1," in told and "line 2" in told and "SyntaxError" in told


# -- the CLI's hooks: --model-option, --sub-model-option, doctor --model ----------------------

def cli(*args: str, env: dict[str, str] | None = None) -> Any:
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    full_env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("RLM_SANDBOX_")}
    full_env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(repo), **(env or {})})
    return subprocess.run([sys.executable, "-m", "rlm_sandbox", *args], capture_output=True, text=True,
                          env=full_env, timeout=300, cwd=repo)


def test_model_options_from_the_command_line_reach_the_provider(tmp_path, sandbox_image):
    context = tmp_path / "c.txt"
    context.write_text("abc")

    def answer(messages: list[dict]) -> Reply:
        if messages[0]["role"] == "system":
            return Reply("```repl\nprint(llm_query('hi'))\n```" if len(messages) == 2 else "FINAL(done)")
        return Reply("sub says hi")

    with OpenAICompatibleServer(answer) as server:
        done = cli("run", "-q", "x", "-f", str(context), "-m", "openai/root-model", "--sub-model", "openai/sub-model",
                   "--model-option", "top_p=0.5", "--model-option", 'stop=["<END>"]',
                   "--sub-model-option", "reasoning_effort=low", "--set", "max_tokens=300",
                   env={"RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test"})
        bodies = {request.body["model"]: request.body for request in server.requests}
    assert done.returncode == 0, done.stderr
    assert (bodies["root-model"]["top_p"], bodies["root-model"]["stop"], bodies["root-model"]["max_tokens"]) == (
        0.5, ["<END>"], 300)
    assert bodies["sub-model"]["reasoning_effort"] == "low" and "top_p" not in bodies["sub-model"]


@pytest.mark.parametrize("flag, value, message", [
    ("--model-option", "max_tokens=5", "set max_tokens (root) or sub_max_tokens"),
    ("--sub-model-option", "api_key=sk-live-abcdef123456", "looks like a credential"),
    ("--model-option", "top_p", "takes KEY=VALUE"),
])
def test_bad_model_options_on_the_command_line_are_refused(tmp_path, flag, value, message):
    context = tmp_path / "c.txt"
    context.write_text("abc")
    done = cli("run", "-q", "x", "-f", str(context), "-m", "openai/x", flag, value)
    assert done.returncode == 2 and message in done.stderr, done.stderr
    assert "sk-live-abcdef123456" not in done.stderr + done.stdout


def test_doctor_model_says_when_the_template_drops_the_system_message(sandbox_image):
    def drops(messages: list[dict]) -> Reply:
        seen = [m for m in messages if m["role"] != "system"]
        return Reply("What code word?", input_tokens=estimate_tokens(seen[0]["content"]))

    with OpenAICompatibleServer(drops) as server:
        done = cli("doctor", "--model", "openai/test-model",
                   env={"RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test"})
        asked = len(server.requests)
    assert asked == 1
    assert "drops it" in done.stdout + done.stderr and "supports_system_message=false" in done.stdout + done.stderr


def test_a_stalled_run_exits_3_and_says_its_answer_is_not_final(tmp_path, sandbox_image):
    context = tmp_path / "c.txt"
    context.write_text("abc")
    with OpenAICompatibleServer(lambda messages: "I am still thinking about it.") as server:
        done = cli("run", "-q", "x", "-f", str(context), "-m", "openai/x",
                   env={"RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test"})
        calls = len(server.requests)
    assert done.returncode == 3 and "status=stalled" in done.stderr and "NOT A FINAL ANSWER" in done.stderr
    assert calls == 3  # two identical replies, then one answer-now call: not 20 paid calls of nothing
