"""rlm_query: child RLMs with their own sandboxes, sharing the parent's budget and depth."""

from __future__ import annotations

import pytest

from rlm_sandbox.testing import ScriptedModel
from tests.rlm_helpers import feedback, make_rlm, user_messages

pytestmark = [pytest.mark.docker, pytest.mark.loop]  # tests the loop: the local sandbox in the fast tier

CHILD_COUNTS_WORDS = "```repl\nFINAL(str(len(context.split())))\n```"


def test_rlm_query_runs_a_child_with_its_own_sandbox_and_sub_context(sandbox_factory):
    root = ScriptedModel([
        "```repl\nparts = context.split('|')\ncounts = [rlm_query('How many words?', p) for p in parts]\n"
        "print(counts, 'parent still has', len(context))\n```",
        "```repl\nFINAL(sum(int(c) for c in counts))\n```",
    ])
    child_root = ScriptedModel(responder=lambda m: CHILD_COUNTS_WORDS)
    result = make_rlm(sandbox_factory, root, child_root, max_depth=1).run("Total words?", "a b c|d e|f")
    assert result.answer == "6" and result.status == "completed"
    assert "['3', '2', '1'] parent still has 11" in feedback(root, 1)
    # Each child saw only its own piece: its first message describes a short str (issue 21: not the
    # system prompt, which is the same for every run so providers cache it).
    child_prompts = [call[1]["content"] for call in child_root.calls]
    assert any("a str of 5 characters" in p for p in child_prompts)
    assert result.sub_calls == 3
    children = [e for e in result.trajectory if e["event"] == "child_run_start"]
    assert len(children) == 3 and all(e["depth"] == 0 for e in children)
    nested = [e for e in result.trajectory if e["run_id"] == children[0]["child_run_id"]]
    assert nested[0]["event"] == "run_start" and nested[0]["depth"] == 1 and nested[-1]["event"] == "final"
    assert nested[0]["parent_run_id"] == result.trajectory[0]["run_id"]


def test_at_max_depth_rlm_query_falls_back_to_llm_query(sandbox_factory):
    root = ScriptedModel(["```repl\nprint(rlm_query('Summarise', 'the sub context'))\n```", "FINAL(x)"])
    sub = ScriptedModel(responder=lambda m: "plain answer to: " + m[-1]["content"])
    result = make_rlm(sandbox_factory, root, sub, max_depth=0).run("q", "ctx")
    assert "plain answer to: Summarise\n\nContext:\nthe sub context" in feedback(root, 1)
    assert any(e["event"] == "depth_fallback" for e in result.trajectory)
    assert result.sub_calls == 1


def test_a_child_at_the_depth_limit_falls_back_too(sandbox_factory):
    root = ScriptedModel(["```repl\nprint(rlm_query('child question', 'ctx'))\n```", "FINAL(done)"])
    child_script = iter(["```repl\nanswer = rlm_query('grandchild question')\nFINAL(answer)\n```"])
    child_and_sub = ScriptedModel(responder=lambda m: next(child_script, "grandchild via llm_query"))
    result = make_rlm(sandbox_factory, root, child_and_sub, max_depth=1).run("q", "ctx")
    assert "grandchild via llm_query" in feedback(root, 1)
    assert result.status == "completed" and result.sub_calls == 2


def test_a_child_spends_the_parents_budget(sandbox_factory):
    root = ScriptedModel(["```repl\nprint(rlm_query('child', 'ctx'))\n```", "FINAL(parent)"])
    child_script = iter(["```repl\nfor i in range(5):\n    llm_query('x')\n```"])
    model = ScriptedModel(responder=lambda m: next(child_script, "sub answer"))
    result = make_rlm(sandbox_factory, root, model, max_depth=1, max_sub_calls=3).run("q", "ctx")
    assert result.sub_calls == 3  # 1 rlm_query + 2 llm_query inside the child
    # the budget fallback prompt is appended to the cell's output, in the same (last) message
    cell_output = user_messages(root.calls[1])[-1].split("\n\nThe run's budget is used up")[0]
    assert "BudgetExceeded" in cell_output
    assert result.status == "budget_exhausted" and "max_sub_calls" in result.error


def test_rlm_query_batched_runs_children_concurrently_in_order(sandbox_factory):
    root = ScriptedModel(["```repl\nprint(rlm_query_batched([('count', 'a b'), ('count', 'c d e'), 'count']))\n```",
                          "FINAL(ok)"])
    child = ScriptedModel(responder=lambda m: "```repl\nFINAL(str(len((context or '').split())))\n```")
    result = make_rlm(sandbox_factory, root, child, max_depth=1).run("q", "ctx")
    assert "['2', '3', '0']" in feedback(root, 1) and result.sub_calls == 3
