"""Kernel state the loop reads through the protocol, never by running code (issue 18, part 1):
``FINAL_VAR(name)`` named in a reply, and the ``memory_status()`` listing a digest shows. A
cell may rebind either name; the kernel's own helpers answer all the same. The local
sandbox runs the same kernel over the same protocol, so these need no Docker."""

from __future__ import annotations

from rlm_sandbox import RLM
from rlm_sandbox.models import LLMClient
from rlm_sandbox.testing import ScriptedModel


def test_final_var_is_answered_by_the_kernel_even_when_a_cell_rebound_it(make_local_sandbox):
    sb = make_local_sandbox()
    sb.exec("total = {'n': 4}\nFINAL_VAR = lambda name: None\nmemory_status = lambda: 'a listing of nothing'")
    found = sb.final_var("total")
    assert found is not None and (found.answer, found.source, found.name, found.truncated) == \
        ('{"n": 4}', "FINAL_VAR", "total", False)
    assert sb.final_var("'total'").answer == '{"n": 4}'  # quoted, as FINAL_VAR('total') is written
    assert sb.final_var("nope") is None and sb.final_var("__builtins__") is None
    listing = sb.memory_status()
    assert "total" in listing and "dict" in listing and "a listing of nothing" not in listing


def test_final_var_keeps_the_helpers_rules_for_answer_and_for_a_value_too_long(make_local_sandbox):
    sb = make_local_sandbox()
    assert sb.final_var("answer") is None  # the original RLM's answer dict, still empty
    sb.exec("answer['content'] = 'done'\nbig = 'a' * 1_000_001\nodd = {1, 2}")
    assert sb.final_var("answer").answer == "done"
    big = sb.final_var("big")
    assert big.truncated and len(big.answer) == 1_000_000
    assert sb.final_var("odd").answer == "{1, 2}"  # not JSON: shown by repr, as FINAL_VAR does


def rlm(model: ScriptedModel, **options: object) -> RLM:
    return RLM(model=model.model, sandbox="local", llm=LLMClient(backoff_initial_s=0.01, backoff_max_s=0.05),
               **options)


def test_a_run_ends_on_final_var_even_when_the_model_rebound_the_name():
    root = ScriptedModel(["```repl\nresult = 'forty-two'\nFINAL_VAR = print\n```\nFINAL_VAR(result)"])
    result = rlm(root).run("q", "ctx")
    assert (result.answer, result.status, result.iterations) == ("forty-two", "completed", 1)


def test_a_digest_lists_the_real_variables_when_the_model_rebound_memory_status():
    steps = [f"```repl\nstep_{n} = {n}\nprint('{'x' * 60} ' * 30)\n```" for n in range(2, 9)]
    root = ScriptedModel(["```repl\nstep_1 = 1\nmemory_status = lambda: 'a listing of nothing'\n```", *steps,
                          "FINAL(done)"])
    result = rlm(root, context_window=2400, max_iterations=12, offload=False).run("q", "ctx")
    assert result.answer == "done"
    folded = [e for e in result.trajectory if e.event == "compaction"]
    assert folded, "the history never needed folding: the test no longer tests the digest"
    first_user = [m for m in root.calls[-1] if m["role"] == "user"][0]["content"]
    listing = first_user.split("Variables in the REPL now (memory_status()):", 1)[1]
    assert "step_1" in listing and "a listing of nothing" not in listing
