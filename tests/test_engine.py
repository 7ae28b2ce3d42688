"""The RLM loop end to end: a scripted model through litellm's real code path, real
Docker sandboxes, real sockets."""

from __future__ import annotations

import litellm
import pytest

from rlm_sandbox import RLM
from rlm_sandbox.testing import OpenAICompatibleServer, Reply, ScriptedModel, scripted_cost
from tests.rlm_helpers import make_rlm as build_rlm
from tests.rlm_helpers import user_messages

pytestmark = pytest.mark.docker


@pytest.fixture
def make_rlm(sandbox_factory):
    return lambda root, sub=None, **options: build_rlm(sandbox_factory, root, sub, **options)


def last_user_message(call: list[dict]) -> str:
    return user_messages(call)[-1]


# -- finishing --------------------------------------------------------------------------

@pytest.mark.loop
def test_run_explores_then_answers_with_final(make_rlm):
    root = ScriptedModel(["```repl\nprint(context.count('apple'))\n```", "FINAL(3 apples)"])
    result = make_rlm(root).run("How many apples?", "apple pear apple fig apple")
    assert (result.answer, result.status, result.iterations, result.code_executions) == ("3 apples", "completed", 2, 1)
    assert last_user_message(root.calls[1]).strip().endswith("3")
    assert result.history[0]["role"] == "system" and result.history[-1]["content"] == "FINAL(3 apples)"


@pytest.mark.loop
def test_final_var_returns_the_variable(make_rlm):
    root = ScriptedModel(["```repl\nwords = context.split()\nanswer = {'n': len(words)}\n```\nFINAL_VAR(answer)"])
    result = make_rlm(root).run("Count words", "a b c d")
    assert result.answer == '{"n": 4}' and result.iterations == 1


@pytest.mark.loop
def test_final_called_inside_a_cell(make_rlm):
    root = ScriptedModel(["```repl\nFINAL(context.upper())\nprint('not reached')\n```"])
    result = make_rlm(root).run("Shout", "quiet")
    assert result.answer == "QUIET" and result.status == "completed"


@pytest.mark.loop
def test_final_with_nested_parentheses_and_lines(make_rlm):
    root = ScriptedModel(["FINAL(The answer (after checking (twice)) is:\n42 (exactly))"])
    result = make_rlm(root).run("q", "ctx")
    assert result.answer == "The answer (after checking (twice)) is:\n42 (exactly)"


@pytest.mark.loop
def test_final_naming_a_variable_uses_its_value(make_rlm):
    root = ScriptedModel(["```repl\ntotal = 6 * 7\n```", "FINAL(total)", ])
    assert make_rlm(root).run("q", "ctx").answer == "42"


@pytest.mark.loop
def test_missing_final_var_is_reported_and_the_loop_continues(make_rlm):
    root = ScriptedModel(["FINAL_VAR(nope)", "```repl\nnope = 'found'\n```\nFINAL_VAR('nope')"])
    result = make_rlm(root).run("q", "ctx")
    assert result.answer == "found" and result.iterations == 2
    assert "no variable named `nope`" in last_user_message(root.calls[1])


@pytest.mark.loop
def test_error_is_shown_and_the_model_corrects_itself(make_rlm):
    root = ScriptedModel([
        "```repl\nprint('step 1')\nvalue = int(context) / 0\n```",
        "```repl\nvalue = int(context) * 2\nprint(value)\n```",
        "FINAL_VAR(value)",
    ])
    result = make_rlm(root).run("Double it", "21")
    feedback = last_user_message(root.calls[1])
    assert "step 1" in feedback and "ZeroDivisionError" in feedback and "line 2" in feedback
    assert result.answer == "42" and result.status == "completed"


@pytest.mark.loop
def test_final_in_a_reply_whose_code_failed_is_not_accepted(make_rlm):
    root = ScriptedModel(["```repl\nx = undefined_name\n```\nFINAL(premature)", "FINAL(checked)"])
    result = make_rlm(root).run("q", "ctx")
    assert result.answer == "checked"
    assert "not accepted" in last_user_message(root.calls[1])


@pytest.mark.loop
def test_later_blocks_are_skipped_after_a_failing_block(make_rlm):
    root = ScriptedModel(["```repl\n1/0\n```\n```repl\nprint('second')\n```", "FINAL(done)"])
    result = make_rlm(root).run("q", "ctx")
    feedback = last_user_message(root.calls[1])
    assert "second" not in feedback and "1 later block(s) were not run" in feedback
    assert result.code_executions == 1


# -- offloading ---------------------------------------------------------------------------

@pytest.mark.loop
def test_long_output_is_offloaded_and_read_back_in_slices(make_rlm):
    root = ScriptedModel([
        "```repl\nprint(context)\n```",
        "```repl\nprint(_result_0[3000:3010])\n```",
        "FINAL(done)",
    ])
    context = "a" * 3000 + "MARKER" + "b" * 3000
    result = make_rlm(root, offload_threshold=500, preview_chars=100).run("Find the marker", context)
    first = last_user_message(root.calls[1])
    assert "_result_0" in first and "6,007 characters" in first and "MARKER" not in first
    second = last_user_message(root.calls[2])
    assert "MARKERbbbb" in second and "_result_1" not in second
    assert result.status == "completed"


@pytest.mark.loop
def test_offloading_off_shows_output_clipped_to_max_output_chars(make_rlm):
    root = ScriptedModel(["```repl\nprint(context)\n```", "FINAL(done)"])
    make_rlm(root, offload=False, max_output_chars=1000).run("q", "h" * 500 + "x" * 5000 + "t" * 500)
    seen = last_user_message(root.calls[1])
    assert "characters omitted" in seen and len(seen) < 1200
    assert seen.startswith("[output]\nhhh") and seen.rstrip().endswith("ttt")


# -- limits and faults ----------------------------------------------------------------------

@pytest.mark.loop
def test_max_iterations_asks_once_more_for_the_best_answer(make_rlm):
    root = ScriptedModel(["```repl\nprint(1)\n```", "```repl\nprint(2)\n```", "FINAL(best guess)"])
    result = make_rlm(root, max_iterations=2).run("q", "ctx")
    assert (result.status, result.answer, result.iterations) == ("max_iterations", "best guess", 2)
    assert "used every iteration" in last_user_message(root.calls[2])


@pytest.mark.loop
def test_max_iterations_fallback_without_final_uses_the_reply_text(make_rlm):
    root = ScriptedModel(["```repl\nprint(1)\n```", "I think it is blue."])
    result = make_rlm(root, max_iterations=1).run("q", "ctx")
    assert (result.status, result.answer) == ("max_iterations", "I think it is blue.")


@pytest.mark.loop
def test_transient_errors_are_retried_then_succeed(make_rlm):
    rate_limited = litellm.RateLimitError("slow down", llm_provider="scripted", model="m")
    root = ScriptedModel([rate_limited, litellm.Timeout("slow", model="m", llm_provider="scripted"), "FINAL(ok)"])
    result = make_rlm(root).run("q", "ctx")
    assert (result.status, result.answer, root.call_count) == ("completed", "ok", 3)


@pytest.mark.loop
def test_permanent_error_ends_the_run_with_status_error(make_rlm):
    denied = litellm.AuthenticationError("bad key", llm_provider="scripted", model="m")
    root = ScriptedModel([denied])
    result = make_rlm(root).run("q", "ctx")
    assert result.status == "error" and root.call_count == 1
    assert "authentication failed" in result.error and "API_KEY" in result.error


@pytest.mark.loop
def test_prose_only_replies_are_nudged(make_rlm):
    root = ScriptedModel(["Let me think about it.", "Still thinking.", "FINAL(fine)"])
    result = make_rlm(root).run("q", "ctx")
    assert result.answer == "fine" and result.iterations == 3
    assert sum(1 for e in result.trajectory if e["event"] == "nudge") == 2
    assert "no ```repl block" in last_user_message(root.calls[1])


@pytest.mark.loop
def test_an_empty_reply_is_retried_not_taken_as_a_reply(make_rlm):
    """issue 7 (5): content null and no tool calls is a provider error, retried as transient."""
    root = ScriptedModel([Reply(content=None, input_tokens=None, output_tokens=None), "FINAL(fine)"])
    result = make_rlm(root).run("q", "ctx")
    assert (result.status, result.answer, result.iterations, root.call_count) == ("completed", "fine", 1, 2)
    assert not any(e["event"] == "nudge" for e in result.trajectory)


@pytest.mark.loop
def test_a_model_that_only_sends_empty_replies_ends_the_run_with_an_error(make_rlm):
    """Not max_iterations of paid nudges: max_retries + 1 calls, then status="error"."""
    root = ScriptedModel(responder=lambda messages: Reply(content=None, input_tokens=30, output_tokens=0))
    result = make_rlm(root, max_iterations=10).run("q", "ctx")
    assert result.status == "error" and result.iterations == 1
    assert root.call_count == 5  # the default client's max_retries=4: retried as transient, then given up
    assert "empty reply" in result.error and "content was null, with no tool calls" in result.error
    assert result.total_input_tokens == 5 * 30  # every empty answer was paid for, and is counted
    assert result.answer_from == "none" and result.answer == ""


# -- sub-calls and accounting ----------------------------------------------------------------

@pytest.mark.loop
def test_sub_calls_and_batched_sub_calls_are_counted_and_summed(make_rlm):
    root = ScriptedModel([
        Reply("```repl\nfirst = llm_query('count: ' + context[:5])\n"
              "rest = llm_query_batched(['count: ' + c for c in context.split()])\nprint(first, rest)\n```",
              input_tokens=100, output_tokens=10),
        Reply("FINAL_VAR(rest)", input_tokens=200, output_tokens=5),
    ])
    sub = ScriptedModel(responder=lambda messages: Reply(str(len(messages[-1]["content"])),
                                                         input_tokens=7, output_tokens=1))
    result = make_rlm(root, sub).run("q", "aa bbb cccc")
    assert result.answer == '["9", "10", "11"]'
    assert (result.sub_calls, sub.call_count) == (4, 4)
    assert result.total_input_tokens == 100 + 200 + 4 * 7
    assert result.total_output_tokens == 10 + 5 + 4 * 1
    by_role = {u.role: u for u in result.usage}
    assert (by_role["root"].calls, by_role["sub"].calls, by_role["sub"].model) == (2, 4, sub.model)


@pytest.mark.loop
def test_cost_is_accounted_from_litellm_prices(make_rlm):
    root = ScriptedModel([Reply("FINAL(x)", input_tokens=1000, output_tokens=100)])
    scripted_cost(root.model, input_per_token=1e-6, output_per_token=2e-6)
    result = make_rlm(root).run("q", "ctx")
    assert result.cost_usd == pytest.approx(1000 * 1e-6 + 100 * 2e-6)


@pytest.mark.loop
def test_failed_sub_call_raises_in_the_cell_and_the_run_goes_on(make_rlm):
    root = ScriptedModel([
        "```repl\ntry:\n    llm_query('hi')\nexcept LLMError as e:\n    print('caught:', type(e).__name__)\n```",
        "```repl\nllm_query('again')\n```",
        "FINAL(recovered)",
    ])
    sub = ScriptedModel([litellm.AuthenticationError("no key", llm_provider="scripted", model="m")] * 2)
    result = make_rlm(root, sub).run("q", "ctx")
    assert "caught: LLMError" in last_user_message(root.calls[1])
    assert "LLMError" in last_user_message(root.calls[2])
    assert (result.status, result.answer) == ("completed", "recovered")


@pytest.mark.loop
def test_the_context_never_enters_the_prompt(make_rlm):
    root = ScriptedModel(["FINAL(x)"])
    context = "start " + "filler " * 10_000 + "SECRET_TAIL_MARKER"
    make_rlm(root).run("q", context)
    prompt_text = " ".join(m["content"] for m in root.calls[0])
    assert "SECRET_TAIL_MARKER" not in prompt_text and "start filler" in prompt_text
    assert "70,024 characters" in prompt_text


@pytest.mark.loop
def test_verbose_reports_progress_without_changing_what_the_model_sees(make_rlm, capsys):
    script = ["```repl\nprint(len(context))\n```", "FINAL(done)"]
    quiet_root, loud_root = ScriptedModel(script), ScriptedModel(script)
    make_rlm(quiet_root, verbose=False).run("q", "ctx")
    quiet_err = capsys.readouterr().err
    make_rlm(loud_root, verbose=True).run("q", "ctx")
    loud_err = capsys.readouterr().err
    assert quiet_root.calls == loud_root.calls
    assert "iteration 1" in loud_err and "FINAL" in loud_err and "iteration" not in quiet_err


@pytest.mark.loop
def test_events_stream_to_a_progress_callback(make_rlm):
    events = []
    root = ScriptedModel(["```repl\nprint(1)\n```", "FINAL(ok)"])
    make_rlm(root, on_event=events.append).run("q", "ctx")
    kinds = [e["event"] for e in events]
    assert kinds[0] == "run_start" and kinds[-1] == "final" and "cell" in kinds and kinds.count("iteration") == 2


@pytest.mark.loop
def test_local_sandbox_option_runs_the_same_loop(make_rlm):
    root = ScriptedModel(["```repl\nprint(sum(context))\n```", "FINAL(6)"])
    assert make_rlm(root, sandbox="local").run("q", [1, 2, 3]).answer == "6"


# -- settings -----------------------------------------------------------------------------

@pytest.mark.loop
def test_environment_settings_apply_and_explicit_arguments_win(make_rlm, monkeypatch):
    monkeypatch.setenv("RLM_SANDBOX_MAX_ITERATIONS", "1")
    root = ScriptedModel(["```repl\nprint(1)\n```", "FINAL(a)"])
    assert make_rlm(root).run("q", "c").status == "max_iterations"
    root = ScriptedModel(["```repl\nprint(1)\n```", "FINAL(a)"])
    assert make_rlm(root, max_iterations=5).run("q", "c").status == "completed"


def test_unknown_option_is_refused_with_the_valid_ones_listed():
    with pytest.raises(TypeError, match="unknown option.*max_iteratons.*valid options"):
        RLM(model="m", max_iteratons=3)


# -- over real HTTP ---------------------------------------------------------------------------

@pytest.mark.loop
def test_the_loop_runs_over_http_against_an_openai_compatible_server(sandbox_factory):
    script = iter(["```repl\nwords = context.split()\nprint(len(words))\n```", "FINAL_VAR(words)"])
    with OpenAICompatibleServer(lambda messages: Reply(next(script), input_tokens=50, output_tokens=5)) as server:
        rlm = RLM(model="openai/test-model", api_base=server.url, api_key="sk-test-not-real",
                  sandbox_factory=sandbox_factory)
        result = rlm.run("List the words", "alpha beta")
    assert (result.status, result.answer) == ("completed", '["alpha", "beta"]')
    assert len(server.requests) == 2 and server.requests[0].body["model"] == "test-model"
    headers = {k.lower(): v for k, v in server.requests[0].headers.items()}
    assert headers["authorization"] == "Bearer sk-test-not-real"
    assert result.total_input_tokens == 100


def test_a_sandbox_that_cannot_start_is_reported_before_any_model_call(sandbox_factory):
    from rlm_sandbox.errors import ImageError

    def broken_factory(spec, context, host):
        sandbox = sandbox_factory(spec, context, host)
        sandbox.image = "rlm-sandbox:no-such-image"
        return sandbox

    root = ScriptedModel(["```repl\nprint(1)\n```"])
    with pytest.raises(ImageError, match="no-such-image.*is not present"):
        build_rlm(broken_factory, root).run("q", "ctx")
    assert root.call_count == 0  # the first call waits for the sandbox: nothing is billed (issue 17, item 11)


# -- batches keep what they paid for (issue 7, item 8) ------------------------------------------

@pytest.mark.loop
def test_a_failed_prompt_in_a_batch_no_longer_loses_the_other_answers(make_rlm):
    bad_request = litellm.BadRequestError("prompt 3 is malformed", model="m", llm_provider="scripted")

    def sub_answers(messages):
        prompt = messages[-1]["content"]
        return Reply(error=bad_request) if prompt == "q3" else f"answer to {prompt}"

    root = ScriptedModel([
        "```repl\nanswers = llm_query_batched([f'q{i}' for i in range(8)], return_exceptions=True)\n"
        "for a in answers:\n    print(a if isinstance(a, str) else (a['error'], a['message']))\n```",
        "```repl\ntry:\n    llm_query_batched([f'q{i}' for i in range(8)])\nexcept LLMError as e:\n"
        "    print('raised:', e)\n```",
        "FINAL(done)"])
    sub = ScriptedModel(responder=sub_answers)
    result = make_rlm(root, sub).run("q", "ctx")
    first = last_user_message(root.calls[1]).splitlines()
    assert first[1:4] == ["answer to q0", "answer to q1", "answer to q2"]
    assert first[4].startswith("('LLMError', ") and "prompt 3 is malformed" in first[4]
    assert first[5:9] == ["answer to q4", "answer to q5", "answer to q6", "answer to q7"]
    second = last_user_message(root.calls[2])
    assert "raised: 1 of 8 sub-calls failed; the first (item 3)" in second
    assert "The 7 that succeeded are lost: pass return_exceptions=True" in second
    assert result.status == "completed" and sub.call_count == 16


@pytest.mark.loop
def test_the_system_prompt_tells_the_model_how_to_keep_a_batch(make_rlm):
    root = ScriptedModel(["FINAL(x)"])
    make_rlm(root).run("q", "ctx")
    system = root.calls[0][0]["content"]
    assert "return_exceptions=True" in system and "isinstance(answer, str)" in system


# -- where the answer came from (issue 7, item 9) ------------------------------------------------

@pytest.mark.parametrize("script", [["FINAL(in text)"], ["```repl\nFINAL('in code')\n```"],
                                    ["```repl\nx = 'a variable'\n```\nFINAL_VAR(x)"]])
@pytest.mark.loop
def test_a_final_answer_says_it_is_one(make_rlm, script):
    root = ScriptedModel(script)
    result = make_rlm(root).run("q", "ctx")
    assert (result.status, result.answer_from) == ("completed", "final")
    assert result.trajectory[-1]["answer_from"] == "final"


@pytest.mark.loop
def test_an_answer_now_reply_never_looks_like_a_final_one(make_rlm):
    """Even when the answer-now reply itself says FINAL(...)."""
    root = ScriptedModel(["```repl\nprint(1)\n```", "FINAL(best guess)"])
    result = make_rlm(root, max_iterations=1).run("q", "ctx")
    assert (result.status, result.answer, result.answer_from) == ("max_iterations", "best guess", "answer_now")
    root = ScriptedModel(["```repl\nprint(1)\n```", "```repl\nprint(2)\n```"])
    result = make_rlm(root, max_iterations=1).run("q", "ctx")
    assert (result.answer, result.answer_from) == ("```repl\nprint(2)\n```", "answer_now")


@pytest.mark.loop
def test_a_run_cut_short_answers_with_the_last_reply_and_says_so(make_rlm):
    denied = litellm.AuthenticationError("bad key", llm_provider="scripted", model="m")
    root = ScriptedModel(["```repl\nprint(1)\n```", denied])
    result = make_rlm(root).run("q", "ctx")
    assert (result.status, result.answer_from) == ("error", "last_reply")
    assert result.answer == "```repl\nprint(1)\n```"
    root = ScriptedModel([denied])
    result = make_rlm(root).run("q", "ctx")
    assert (result.status, result.answer, result.answer_from) == ("error", "", "none")
