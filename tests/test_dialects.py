"""Other harnesses' ways to finish finish our runs too: the original RLM's
``answer["content"] = ...; answer["ready"] = True`` and DSPy's ``SUBMIT(...)``, with scripted
replies through the real loop, litellm and a real container."""

from __future__ import annotations

from typing import Any

import pytest

from rlm_sandbox.testing import ScriptedModel
from tests.rlm_helpers import feedback
from tests.rlm_helpers import make_rlm as build_rlm

pytestmark = [pytest.mark.docker, pytest.mark.loop]  # tests the loop: the local sandbox in the fast tier


@pytest.fixture
def make_rlm(sandbox_factory: Any) -> Any:
    return lambda root, **options: build_rlm(sandbox_factory, root, **options)


def cells(result: Any) -> list[Any]:
    return [event for event in result.trajectory if event.event == "cell"]


def test_answer_ready_finishes_the_run_as_a_final_answer(make_rlm):
    root = ScriptedModel(["```repl\nanswer['content'] = context.upper()\nanswer['ready'] = True\n```"])
    result = make_rlm(root).run("Shout", "quiet")
    assert (result.answer, result.status, result.answer_from, result.iterations) == ("QUIET", "completed", "final", 1)
    assert [cell.called_final for cell in cells(result)] == [True]


def test_answer_content_alone_does_not_finish_until_ready_is_set(make_rlm):
    root = ScriptedModel([
        "```repl\nanswer['content'] = 'draft'\nprint(answer)\n```",
        "```repl\nanswer['content'] = answer['content'] + ', checked'\nanswer['ready'] = True\n```",
    ])
    result = make_rlm(root).run("q", "ctx")
    assert (result.answer, result.iterations) == ("draft, checked", 2)
    assert "{'content': 'draft', 'ready': False}" in feedback(root, 1)
    assert [cell.called_final for cell in cells(result)] == [False, True]


def test_answer_ready_in_a_cell_that_failed_does_not_finish(make_rlm):
    root = ScriptedModel([
        "```repl\nanswer['content'] = 'premature'\nanswer['ready'] = True\nint('x')\n```",
        "```repl\nanswer['content'] = 'fixed'\nanswer['ready'] = True\n```",
    ])
    result = make_rlm(root).run("q", "ctx")
    assert (result.answer, result.iterations) == ("fixed", 2)
    assert "ValueError" in feedback(root, 1)


def test_answer_holding_data_answers_with_json(make_rlm):
    root = ScriptedModel(["```repl\nanswer = {'content': {'total': 3}, 'ready': True}\n```"])
    assert make_rlm(root).run("q", "ctx").answer == '{"total": 3}'


def test_the_answer_dict_is_the_protocols_and_not_a_variable_of_the_model(make_rlm):
    root = ScriptedModel([
        "```repl\nprint(memory_status())\n```",
        "FINAL_VAR(answer)",  # nothing in it yet: not an answer
        "```repl\nanswer['content'] = 'from the dict'\n```\nFINAL_VAR(answer)",
    ])
    result = make_rlm(root).run("q", "ctx")
    listed = feedback(root, 1)
    assert "context" in listed and "answer" not in listed
    assert "no variable named `answer`" in feedback(root, 2)
    assert (result.answer, result.iterations) == ("from the dict", 3)


def test_a_session_reads_the_ready_flag_once(make_rlm):
    root = ScriptedModel([
        "```repl\nanswer['content'] = 'first'\nanswer['ready'] = True\n```",
        "```repl\nprint('the flag was cleared:', answer['ready'])\n```",
        "FINAL(second)",
    ])
    with make_rlm(root).session("ctx") as session:
        assert session.ask("one").answer == "first"
        second = session.ask("two")
    assert (second.answer, second.iterations) == ("second", 2)
    assert "the flag was cleared: False" in feedback(root, 2)


def test_submit_finishes_the_run_and_ends_its_cell_at_once(make_rlm):
    root = ScriptedModel(["```repl\nSUBMIT(context.upper())\nprint('not reached')\n```"])
    result = make_rlm(root).run("Shout", "quiet")
    assert (result.answer, result.status, result.answer_from, result.iterations) == ("QUIET", "completed", "final", 1)
    [cell] = cells(result)
    assert cell.called_final and "not reached" not in cell.stdout and cell.error is None


def test_submit_with_fields_answers_with_them_as_json(make_rlm):
    root = ScriptedModel(["```repl\nSUBMIT(answer='blue', confidence=0.9)\n```"])
    assert make_rlm(root).run("q", "ctx").answer == '{"answer": "blue", "confidence": 0.9}'


def test_submit_used_wrongly_is_an_error_the_model_can_fix(make_rlm):
    root = ScriptedModel(["```repl\nSUBMIT()\n```", "```repl\nSUBMIT('x', answer='y')\n```",
                          "```repl\nSUBMIT(answer='y')\n```"])
    result = make_rlm(root).run("q", "ctx")
    assert (result.answer, result.iterations) == ("y", 3)
    assert "SUBMIT needs the answer" in feedback(root, 1)
    assert "either in order or by name, not both" in feedback(root, 2)


def test_submit_survives_except_exception_in_the_cell(make_rlm):
    root = ScriptedModel(["```repl\ntry:\n    SUBMIT('kept')\nexcept Exception:\n    print('swallowed')\n```"])
    result = make_rlm(root).run("q", "ctx")
    assert result.answer == "kept" and "swallowed" not in cells(result)[0].stdout


def test_final_of_the_answer_dict_answers_with_its_content(make_rlm):
    root = ScriptedModel(["```repl\nanswer['content'] = 'the content'\nFINAL(answer)\n```"])
    assert make_rlm(root).run("q", "ctx").answer == "the content"
