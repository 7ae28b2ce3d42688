"""Host-enforced budgets: each limit trips at the right count with the right status."""

from __future__ import annotations

import threading
import time

import pytest

from rlm_sandbox.testing import Reply, ScriptedModel, scripted_cost
from tests.rlm_helpers import make_rlm as build_rlm
from tests.rlm_helpers import user_messages

pytestmark = pytest.mark.docker


@pytest.fixture
def make_rlm(sandbox_factory):
    return lambda root, sub=None, **options: build_rlm(sandbox_factory, root, sub, **options)


def cell_feedback(root, turn=1):
    """What the model was told after its first reply's code ran (not the fallback prompt, which
    the answer-now request appends to that same message so roles keep alternating)."""
    return user_messages(root.calls[turn])[-1].split("\n\nThe run's budget is used up")[0]


@pytest.mark.loop
def test_max_sub_calls_raises_in_the_cell_then_ends_the_run_with_the_fallback_answer(make_rlm):
    root = ScriptedModel([
        "```repl\ngot = []\nfor i in range(5):\n    try:\n        got.append(llm_query(f'q{i}'))\n"
        "    except BudgetExceeded as e:\n        print('refused:', e)\n        break\nprint(got)\n```",
        "FINAL(best effort)",
    ])
    sub = ScriptedModel(responder=lambda m: "ok")
    result = make_rlm(root, sub, max_sub_calls=3).run("q", "ctx")
    assert sub.call_count == 3 and result.sub_calls == 3
    assert "refused: no llm_query left: 3 of max_sub_calls=3 used" in cell_feedback(root)
    assert "budget is used up" in user_messages(root.calls[1])[-1]
    assert (result.status, result.answer) == ("budget_exhausted", "best effort")
    assert "max_sub_calls" in result.error


def test_a_sub_call_storm_is_stopped_without_hanging(make_rlm):
    root = ScriptedModel([
        "```repl\nrefused = 0\nfor i in range(10_000):\n    try:\n        llm_query('storm')\n"
        "    except BudgetExceeded:\n        refused += 1\nprint('refused', refused)\n```",
        "FINAL(stopped)",
    ])
    sub = ScriptedModel(responder=lambda m: "x")
    started = time.monotonic()
    result = make_rlm(root, sub, max_sub_calls=50).run("q", "ctx")
    assert sub.call_count == 50 and result.sub_calls == 50
    assert "refused 9950" in cell_feedback(root)
    assert result.status == "budget_exhausted"
    assert time.monotonic() - started < 120  # bounded: refusals never reach a model


@pytest.mark.loop
def test_batched_sub_calls_over_budget_are_refused_as_a_whole(make_rlm):
    root = ScriptedModel(["```repl\nllm_query_batched(['a', 'b', 'c'])\n```", "FINAL(x)"])
    sub = ScriptedModel(responder=lambda m: "ok")
    result = make_rlm(root, sub, max_sub_calls=2).run("q", "ctx")
    assert "BudgetExceeded" in cell_feedback(root) and "for 3 calls" in cell_feedback(root)
    assert result.status == "budget_exhausted" and sub.call_count == 0
    assert result.sub_calls == 0  # a refused batch counts none of its calls


@pytest.mark.loop
def test_max_total_tokens_ends_the_run_with_the_last_partial_answer(make_rlm):
    """The second root call may use its prompt (over 500 tokens: the system prompt) plus
    max_tokens=1000, which no longer fits in 5000 - 3500: it is never sent."""
    root = ScriptedModel([Reply("```repl\nprint(1)\n```", input_tokens=2500, output_tokens=1000),
                          Reply("never asked")])
    result = make_rlm(root, max_total_tokens=5000, max_tokens=1000).run("q", "ctx")
    assert result.status == "budget_exhausted" and root.call_count == 1
    assert result.answer == "```repl\nprint(1)\n```" and "max_total_tokens" in result.error
    assert result.answer_from == "last_reply"


@pytest.mark.loop
def test_max_cost_usd_counts_sub_calls_too(make_rlm):
    root = ScriptedModel([Reply("```repl\nfor i in range(10):\n    llm_query('x')\n```", 100, 10), "FINAL(x)"])
    sub = ScriptedModel(responder=lambda m: Reply("y", input_tokens=1000, output_tokens=0))
    scripted_cost(root.model, 1e-6, 1e-6)
    scripted_cost(sub.model, 1e-6, 1e-6)  # $0.001 per sub-call
    result = make_rlm(root, sub, max_cost_usd=0.0035, max_tokens=100, sub_max_tokens=100).run("q", "ctx")
    assert result.status == "budget_exhausted" and "max_cost_usd" in result.error
    # The 4th is sent (its reservation, a 1-token prompt + 100 output tokens, fits); the provider
    # then reports 1000 prompt tokens, the only overshoot README "Budgets" allows. The 5th is refused.
    assert sub.call_count == 4
    assert result.cost_usd == pytest.approx(0.00011 + 0.004)


@pytest.mark.loop
def test_wall_time_budget_interrupts_a_running_cell(make_rlm):
    root = ScriptedModel(["```repl\nimport time\ntime.sleep(600)\n```", "FINAL(late)"])
    started = time.monotonic()
    result = make_rlm(root, max_wall_time_s=3).run("q", "ctx")
    assert time.monotonic() - started < 30
    assert result.status == "timeout" and "max_wall_time_s" in result.error
    assert root.call_count == 1


@pytest.mark.loop
def test_long_sub_prompt_is_refused_per_call_and_the_run_goes_on(make_rlm):
    root = ScriptedModel(["```repl\nllm_query('x' * 5000)\n```", "```repl\nprint(llm_query('short'))\n```",
                          "FINAL(done)"])
    sub = ScriptedModel(responder=lambda m: "fine")
    result = make_rlm(root, sub, max_sub_prompt_chars=1000).run("q", "ctx")
    assert "5,000 characters is over max_sub_prompt_chars=1,000" in cell_feedback(root)
    assert (result.status, result.answer, sub.call_count) == ("completed", "done", 1)


@pytest.mark.loop
def test_max_concurrency_bounds_batched_sub_calls(make_rlm):
    active, peak, lock = [0], [0], threading.Lock()

    def slow(messages):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.2)
        with lock:
            active[0] -= 1
        return "ok"

    root = ScriptedModel(["```repl\nprint(len(llm_query_batched(['p'] * 8)))\n```", "FINAL(8)"])
    sub = ScriptedModel(responder=slow)
    result = make_rlm(root, sub, max_concurrency=2).run("q", "ctx")
    assert result.answer == "8" and peak[0] == 2


@pytest.mark.loop
def test_cell_timeout_comes_from_settings(make_rlm):
    root = ScriptedModel(["```repl\nwhile True: pass\n```", "FINAL(stopped)"])
    result = make_rlm(root, cell_timeout_s=1).run("q", "ctx")
    assert "CellTimeout" in cell_feedback(root) and result.answer == "stopped"


@pytest.mark.loop
def test_code_can_read_its_budget_but_not_change_it(make_rlm):
    root = ScriptedModel([
        "```repl\ns = budget_status()\nprint(s['sub_calls'])\ns['sub_calls']['limit'] = 10**9\n"
        "llm_query('a'); llm_query('b')\nprint(budget_status()['sub_calls'])\n```",
        "FINAL(x)"])
    sub = ScriptedModel(responder=lambda m: "ok")
    result = make_rlm(root, sub, max_sub_calls=1).run("q", "ctx")
    seen = cell_feedback(root)
    assert "{'used': 0, 'limit': 1}" in seen and "BudgetExceeded" in seen
    assert result.status == "budget_exhausted" and result.sub_calls == 1


@pytest.mark.loop
def test_a_budget_object_sets_the_same_limits(make_rlm):
    from rlm_sandbox import RLM, Budget

    root = ScriptedModel(["```repl\nfor i in range(3):\n    llm_query('x')\n```", "FINAL(x)"])
    sub = ScriptedModel(responder=lambda m: "ok")
    result = make_rlm(root, sub, budget=Budget(max_sub_calls=2, max_iterations=5)).run("q", "ctx")
    assert result.sub_calls == 2 and result.status == "budget_exhausted"
    with pytest.raises(TypeError, match="max_sub_calls given both"):
        RLM(model="m", budget=Budget(max_sub_calls=2), max_sub_calls=3)


# --- reserved before sent (issue 7, items 6 and 7) ------------------------------------------

def counted(model, messages):
    """What a provider with litellm's tokenizer reports for these messages."""
    import litellm

    return litellm.token_counter(model=model, messages=messages)


@pytest.mark.parametrize("extra_prompt_tokens", [0, 25])
@pytest.mark.loop
def test_a_wide_batch_cannot_jointly_overshoot_max_total_tokens(make_rlm, extra_prompt_tokens):
    """12 concurrent sub-calls against a budget with room for a few. Every call is reserved
    (its counted prompt + sub_max_tokens) before it is sent, so the batch stops where the budget
    does. The bound (README "Budgets"): spend <= limit + what providers report beyond each sent
    call's reservation. The sub-model here answers with all of its max_tokens (the worst case)
    and, in the second case, counts 25 prompt tokens more than litellm does."""
    batch = ("```repl\nanswers = llm_query_batched([f'item {i}: ' + 'lorem ipsum dolor sit amet ' * 30 "
             "for i in range(12)], return_exceptions=True)\n"
             "print(sum(isinstance(a, str) for a in answers), 'answered')\n```")
    root = ScriptedModel([lambda m: Reply(batch, input_tokens=counted(root.model, m), output_tokens=60),
                          lambda m: Reply("FINAL(done)", input_tokens=counted(root.model, m), output_tokens=5)])
    sub = ScriptedModel(responder=lambda m: Reply("x" * 400, input_tokens=counted(sub.model, m) + extra_prompt_tokens,
                                                  output_tokens=100, delay_s=0.3))
    limit = 3000
    result = make_rlm(root, sub, max_total_tokens=limit, max_tokens=200, sub_max_tokens=100,
                      max_concurrency=12).run("q", "ctx")
    sent = sub.call_count
    assert 1 <= sent < 12  # the old code sent all 12: about 1,200 + 12 x 290 = 4,700 tokens
    cell = next(e for e in result.trajectory if e["event"] == "cell")
    assert cell["stdout"].strip() == f"{sent} answered"  # the answers that fitted reached the cell
    assert result.total_input_tokens + result.total_output_tokens <= limit + sent * extra_prompt_tokens
    assert result.status == "budget_exhausted" and "max_total_tokens" in result.error


@pytest.mark.loop
def test_every_call_carries_max_tokens_over_http(sandbox_factory):
    """Root and sub-calls are bounded by max_tokens / sub_max_tokens, sent with each request."""
    from rlm_sandbox import RLM
    from rlm_sandbox.testing import OpenAICompatibleServer

    replies = iter(["```repl\nprint(llm_query('hi'))\n```", "sub answer", "FINAL(ok)"])
    with OpenAICompatibleServer(lambda messages: next(replies)) as server:
        result = RLM(model="openai/test-model", api_base=server.url, api_key="sk-test", max_tokens=321,
                     sub_max_tokens=123, sandbox_factory=sandbox_factory).run("q", "ctx")
        bodies = [request.body for request in server.requests]
    assert result.answer == "ok"
    assert [body["max_tokens"] for body in bodies] == [321, 123, 321]


@pytest.mark.loop
def test_an_unpriced_model_with_max_cost_usd_is_refused_before_anything_starts(sandbox_factory):
    from rlm_sandbox.errors import BudgetNotEnforceable

    started = []

    def factory(*args):
        started.append(args)
        return sandbox_factory(*args)

    root = ScriptedModel(["FINAL(never)"])
    sub = ScriptedModel(responder=lambda m: "never")
    scripted_cost(root.model, 1e-6, 1e-6)  # the root has a price; the sub-model has none
    rlm = build_rlm(factory, root, sub, max_cost_usd=0.5)
    with pytest.raises(BudgetNotEnforceable) as caught:
        rlm.run("q", "ctx")
    with pytest.raises(BudgetNotEnforceable):
        rlm.session("ctx").start()
    message = str(caught.value)
    assert f"the sub-model {sub.model!r} has no known price" in message
    assert "sub_input_cost_per_token" in message and "sub_output_cost_per_token" in message
    assert (root.call_count, sub.call_count, started) == (0, 0, [])


@pytest.mark.loop
def test_custom_prices_make_max_cost_usd_enforceable(make_rlm):
    root = ScriptedModel([Reply("```repl\nfor i in range(10):\n    llm_query('x')\n```", 100, 10), "FINAL(x)"])
    sub = ScriptedModel(responder=lambda m: Reply("y", input_tokens=10, output_tokens=90))
    result = make_rlm(root, sub, max_cost_usd=0.0035, max_tokens=100, sub_max_tokens=100,
                      input_cost_per_token=1e-6, output_cost_per_token=1e-6,
                      sub_input_cost_per_token=1e-6, sub_output_cost_per_token=1e-5).run("q", "ctx")
    assert result.status == "budget_exhausted" and "max_cost_usd" in result.error
    by_role = {u.role: u for u in result.usage}
    assert by_role["root"].cost_usd == pytest.approx(110e-6)
    assert by_role["sub"].cost_usd == pytest.approx(sub.call_count * (10e-6 + 900e-6))
    assert result.cost_usd <= 0.0035 and sub.call_count == 3


@pytest.mark.loop
def test_without_a_price_the_cost_is_unknown_never_zero(make_rlm):
    root = ScriptedModel(["```repl\nprint(llm_query('x'))\n```", "FINAL(x)"])
    sub = ScriptedModel(responder=lambda m: "y")
    scripted_cost(root.model, 1e-6, 1e-6)
    result = make_rlm(root, sub).run("q", "ctx")
    assert result.status == "completed" and result.cost_usd is None
    by_role = {u.role: u for u in result.usage}
    assert by_role["root"].cost_usd > 0 and by_role["sub"].cost_usd is None
    assert result.to_dict()["cost_usd"] is None


@pytest.mark.loop
def test_a_cell_may_not_pick_an_unpriced_model_under_max_cost_usd(make_rlm):
    other = ScriptedModel(responder=lambda m: "free?")
    root = ScriptedModel([f"```repl\nllm_query('x', model={other.model!r})\n```", "FINAL(went on)"])
    scripted_cost(root.model, 1e-6, 1e-6)
    result = make_rlm(root, max_cost_usd=1.0, max_tokens=100, allowed_sub_models=[other.model]).run("q", "ctx")
    assert "BudgetExceeded" in cell_feedback(root) and "no known price" in cell_feedback(root)
    assert (result.status, result.answer, other.call_count) == ("completed", "went on", 0)


def test_a_custom_price_comes_as_a_pair_and_its_error_shows_no_other_setting():
    from rlm_sandbox import RLM

    with pytest.raises(ValueError, match="give both input_cost_per_token and output_cost_per_token") as caught:
        RLM(model="openai/local", api_key="sk-never-shown-1234567890", input_cost_per_token=1e-6)
    assert "sk-never" not in str(caught.value)


PICK_A_MODEL = """```repl
try:
    print('answer:', llm_query('x', model={model!r}))
except ModelNotAllowed as exc:
    print('refused:', exc)
try:
    print('batched:', llm_query_batched(['x', 'y'], model={model!r}))
except ModelNotAllowed as exc:
    print('batch refused')
print('default:', llm_query('x'))
```"""


@pytest.mark.loop
def test_cell_code_may_not_choose_a_model_the_host_did_not_allow(make_rlm):
    """Other RLM engines let code pick any model (a pricier one); here the host picks: code may
    name sub_model or one of allowed_sub_models. Control: once allowed, the same call goes through."""
    pricier = ScriptedModel(responder=lambda m: "from the pricier model")
    sub = ScriptedModel(responder=lambda m: "from the sub-model")
    root = ScriptedModel([PICK_A_MODEL.format(model=pricier.model), "FINAL(went on)"])
    result = make_rlm(root, sub).run("q", "ctx")
    told = cell_feedback(root)
    assert "refused:" in told and "allowed_sub_models" in told and "batch refused" in told
    assert "default: from the sub-model" in told and pricier.call_count == 0
    assert (result.status, result.answer) == ("completed", "went on")
    refused = [e for e in result.trajectory if e.event == "sub_call" and e.outcome == "refused"]
    assert len(refused) == 2

    root = ScriptedModel([PICK_A_MODEL.format(model=pricier.model), "FINAL(went on)"])  # the control
    make_rlm(root, sub, allowed_sub_models=[pricier.model]).run("q", "ctx")
    assert "answer: from the pricier model" in cell_feedback(root) and pricier.call_count == 3
