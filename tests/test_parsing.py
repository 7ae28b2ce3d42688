"""Which blocks run, and when a reply's text counts as the final answer."""

from __future__ import annotations

import pytest

from rlm_sandbox.core.parsing import FinalInText, parse_reply
from rlm_sandbox.fences import RUNNABLE_FENCES, read_fences, split_fences


def test_repl_python_and_py_fences_run_in_order_others_do_not():
    reply = ("Plan.\n```repl\na = 1\n```\n```json\n{\"x\": 1}\n```\n```python\nb = 2\n```\n"
             "```\nplain\n```\n```PY\nc = 3\n```\n```text\nprose\n```")
    assert parse_reply(reply).code_blocks == ["a = 1\n", "b = 2\n", "c = 3\n"]


def test_empty_blocks_are_skipped():
    assert parse_reply("```repl\n\n```").code_blocks == []


@pytest.mark.parametrize("reply, expected", [
    ("FINAL(42)", FinalInText("FINAL", "42")),
    ("Done.\nFINAL(The total is 1,234 (in USD))", FinalInText("FINAL", "The total is 1,234 (in USD)")),
    ("FINAL(first line\nsecond line (with parens)\nthird)",
     FinalInText("FINAL", "first line\nsecond line (with parens)\nthird")),
    ('FINAL("quoted answer")', FinalInText("FINAL", "quoted answer")),
    ("FINAL(it's done)", FinalInText("FINAL", "it's done")),
    ("FINAL_VAR(total)", FinalInText("FINAL_VAR", "total")),
    ("FINAL_VAR('total')", FinalInText("FINAL_VAR", "total")),
    ('FINAL_VAR("total")', FinalInText("FINAL_VAR", "total")),
    ("  **FINAL(bold answer)**", FinalInText("FINAL", "bold answer")),
    ("FINAL(unbalanced (paren at the end", FinalInText("FINAL", "unbalanced (paren at the end")),
])
def test_final_forms(reply, expected):
    assert parse_reply(reply).final == expected


@pytest.mark.parametrize("reply", [
    "I will call FINAL(x) once x is computed.",
    "Next I will use FINAL_VAR(result) when ready.",
    "```repl\nFINAL(inside_code)\n```",
    "No answer yet.",
])
def test_final_mentioned_in_passing_or_in_code_is_not_an_answer(reply):
    assert parse_reply(reply).final is None


def test_reply_with_code_and_final_keeps_both():
    parsed = parse_reply("```repl\nx = 6 * 7\n```\nFINAL_VAR(x)")
    assert parsed.code_blocks == ["x = 6 * 7\n"] and parsed.final == FinalInText("FINAL_VAR", "x")


def test_last_final_wins():
    assert parse_reply("FINAL(draft)\nActually:\nFINAL(better)").final.value == "better"


@pytest.mark.parametrize("reply", [
    "Plan.\n```repl\na = 1\n```\n```json\n{}\n```\n```py\nb = 2\n```\nFINAL(3)",
    "```python\n   \n```\n```PYTHON\nx = 1\n```",   # an empty runnable fence runs nothing
    "```repl\nfine = 1\n```\n```repl\ncut = off at the tok",  # the unclosed one is not a cell
    "no code at all, FINAL(4)",
])
def test_the_viewers_and_the_loop_read_a_reply_the_same_way(reply):
    """issue 18 (6): view counts a turn's cells with rlm_sandbox.fences, the loop runs
    parse_reply's blocks; the leaf module is their one reading."""
    parsed, fenced = parse_reply(reply), read_fences(reply)
    assert fenced.code_blocks == parsed.code_blocks and fenced.unclosed_block == parsed.unclosed_block
    shown = [code for language, code in split_fences(reply) if language in RUNNABLE_FENCES and code.strip()]
    assert shown == parsed.code_blocks
