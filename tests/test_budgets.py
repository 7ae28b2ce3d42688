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
    """What the model was told after its first reply's code ran (not the fallback prompt)."""
    return [m for m in user_messages(root.calls[turn]) if "budget is used up" not in m][-1]


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


def test_batched_sub_calls_over_budget_are_refused_as_a_whole(make_rlm):
    root = ScriptedModel(["```repl\nllm_query_batched(['a', 'b', 'c'])\n```", "FINAL(x)"])
    sub = ScriptedModel(responder=lambda m: "ok")
    result = make_rlm(root, sub, max_sub_calls=2).run("q", "ctx")
    assert "BudgetExceeded" in cell_feedback(root) and "for 3 calls" in cell_feedback(root)
    assert result.status == "budget_exhausted" and sub.call_count == 0
    assert result.sub_calls == 0  # a refused batch counts none of its calls


def test_max_total_tokens_ends_the_run_with_the_last_partial_answer(make_rlm):
    """The second root call may use its prompt (over 500 tokens: the system prompt) plus
    max_tokens=1000, which no longer fits in 5000 - 3500: it is never sent."""
    root = ScriptedModel([Reply("```repl\nprint(1)\n```", input_tokens=2500, output_tokens=1000),
                          Reply("never asked")])
    result = make_rlm(root, max_total_tokens=5000, max_tokens=1000).run("q", "ctx")
    assert result.status == "budget_exhausted" and root.call_count == 1
    assert result.answer == "```repl\nprint(1)\n```" and "max_total_tokens" in result.error
    assert result.answer_from == "last_reply"


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


def test_wall_time_budget_interrupts_a_running_cell(make_rlm):
    root = ScriptedModel(["```repl\nimport time\ntime.sleep(600)\n```", "FINAL(late)"])
    started = time.monotonic()
    result = make_rlm(root, max_wall_time_s=3).run("q", "ctx")
    assert time.monotonic() - started < 30
    assert result.status == "timeout" and "max_wall_time_s" in result.error
    assert root.call_count == 1


def test_long_sub_prompt_is_refused_per_call_and_the_run_goes_on(make_rlm):
    root = ScriptedModel(["```repl\nllm_query('x' * 5000)\n```", "```repl\nprint(llm_query('short'))\n```",
                          "FINAL(done)"])
    sub = ScriptedModel(responder=lambda m: "fine")
    result = make_rlm(root, sub, max_sub_prompt_chars=1000).run("q", "ctx")
    assert "5,000 characters is over max_sub_prompt_chars=1,000" in cell_feedback(root)
    assert (result.status, result.answer, sub.call_count) == ("completed", "done", 1)


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


def test_cell_timeout_comes_from_settings(make_rlm):
    root = ScriptedModel(["```repl\nwhile True: pass\n```", "FINAL(stopped)"])
    result = make_rlm(root, cell_timeout_s=1).run("q", "ctx")
    assert "CellTimeout" in cell_feedback(root) and result.answer == "stopped"


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


def test_a_budget_object_sets_the_same_limits(make_rlm):
    from rlm_sandbox import RLM, Budget

    root = ScriptedModel(["```repl\nfor i in range(3):\n    llm_query('x')\n```", "FINAL(x)"])
    sub = ScriptedModel(responder=lambda m: "ok")
    result = make_rlm(root, sub, budget=Budget(max_sub_calls=2, max_iterations=5)).run("q", "ctx")
    assert result.sub_calls == 2 and result.status == "budget_exhausted"
    with pytest.raises(TypeError, match="max_sub_calls given both"):
        RLM(model="m", budget=Budget(max_sub_calls=2), max_sub_calls=3)
