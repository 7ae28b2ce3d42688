"""Issue 21, part B: the prefix providers cache is kept.

Root requests of a run grow by appending, and the system prompt holds only what every run
with the same settings shares (the context's description and the query come in the first
user message), so the tasks of a suite and the child runs of a recursive run send the same
system prompt, long enough (1,024 tokens) for providers to cache it."""

from __future__ import annotations

from typing import Any

import litellm
import pytest

from rlm_sandbox.testing import ScriptedModel
from tests.rlm_helpers import make_rlm

pytestmark = [pytest.mark.docker, pytest.mark.loop]  # tests the loop: the local sandbox in the fast tier

#: A window large enough for the system prompt's long form (prompts.LONG_FORM_MIN_WINDOW).
LARGE_WINDOW = 128_000


def stepping(steps: int, finish: str = "FINAL(done)") -> Any:
    """A root model that runs ``steps`` blocks, one per turn, then finishes with ``finish``."""

    def respond(messages: list[dict]) -> str:
        turn = sum(1 for m in messages if m["role"] == "assistant")
        if turn < steps:
            return f"```repl\nstep_{turn} = len(context) + {turn}\nprint('step', {turn}, step_{turn})\n```"
        return finish

    return respond


def assert_appended(calls: list[list[dict]]) -> None:
    """Each request starts with the whole previous request, unchanged."""
    for number, (previous, current) in enumerate(zip(calls, calls[1:], strict=False), start=2):
        assert len(current) > len(previous) and current[:len(previous)] == previous, f"request {number}"


def test_root_requests_grow_by_appending_and_two_runs_share_the_system_prompt(sandbox_factory):
    """The second run ends with the answer-now request, merged into the latest feedback: a
    message sent for the first time, so it too only appends to the previous request."""
    runs = [("How long is the text?", "alpha beta gamma " * 50, 20), ("Which word comes last?", ["x", "y", "z"], 3)]
    systems = []
    for query, context, iterations in runs:
        with ScriptedModel(responder=stepping(4)) as root:
            result = make_rlm(sandbox_factory, root, max_iterations=iterations).run(query, context)
            calls = root.calls
        assert len(calls) == (5 if iterations == 20 else 4)
        assert result.status == ("completed" if iterations == 20 else "max_iterations")
        assert_appended(calls)
        system, first = calls[0][0], calls[0][1]
        assert system["role"] == "system" and first["role"] == "user"
        assert query not in system["content"] and "It starts" not in system["content"]
        assert first["content"].startswith(f"Query: {query}") and "The context is in the REPL" in first["content"]
        systems.append(system)
    assert "used every iteration" in calls[-1][-1]["content"]  # the last request of the second run
    assert systems[0] == systems[1]  # different tasks, the same cacheable start


def test_a_child_run_sends_its_parents_system_prompt(sandbox_factory):
    root = ScriptedModel(["```repl\nanswer = rlm_query('How many words?', 'one two three')\nprint(answer)\n```",
                          "FINAL(3)"])
    child = ScriptedModel(responder=lambda m: "```repl\nFINAL(str(len(context.split())))\n```")
    with root, child:
        result = make_rlm(sandbox_factory, root, child, max_depth=1).run("Count the words", "a much longer parent text")
        parent_system, child_system = root.calls[0][0], child.calls[0][0]
        child_first = child.calls[0][1]["content"]
    assert result.status == "completed" and result.answer == "3"
    assert parent_system == child_system
    assert child_first.startswith("Query: How many words?") and "a str of 13 characters" in child_first


def test_the_long_form_weighs_what_providers_cache_and_small_windows_get_the_short_one(sandbox_factory):
    systems = {}
    for window in (LARGE_WINDOW, 8_000):
        with ScriptedModel(["FINAL(x)"]) as root:
            make_rlm(sandbox_factory, root, context_window=window).run("q", "ctx")
            systems[window] = root.calls[0][0]["content"]
    long_form, short_form = systems[LARGE_WINDOW], systems[8_000]
    assert litellm.token_counter(model="gpt-4o", text=long_form) >= 1024 and len(long_form) // 4 >= 1024
    assert "## Example" in long_form and "## Example" not in short_form
    assert litellm.token_counter(model="gpt-4o", text=short_form) < 900  # room for iterations in a small window
    for text in (long_form, short_form):  # batched sub-call prompts: the shared part first, in both
        assert "word for word the same" in text and "chunk last" in text


def test_a_folded_system_prompt_still_comes_first(sandbox_factory):
    firsts = []
    for supports, context in ((True, "first context"), (False, ["another", "context"])):
        with ScriptedModel(["FINAL(x)"]) as root:
            make_rlm(sandbox_factory, root, supports_system_message=supports).run("q", context)
            firsts.append(root.calls[0][0]["content"])
    system, folded = firsts
    assert folded.startswith(system + "\n\n---\n\nQuery: q")  # the same static text, then the task
