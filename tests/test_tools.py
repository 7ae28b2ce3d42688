"""Host tools: Python callables on the host, called from sandboxed code over the socket."""

from __future__ import annotations

import pytest

from rlm_sandbox import RLM
from rlm_sandbox.testing import ScriptedModel
from tests.rlm_helpers import feedback, make_rlm

pytestmark = pytest.mark.docker


def search(query: str, k: int = 2) -> list[str]:
    """Search the product catalogue; returns up to k titles."""
    return [f"{query} result {i}" for i in range(k)]


@pytest.mark.loop
def test_tools_are_callable_from_the_sandbox_and_listed_in_the_prompt(sandbox_factory):
    root = ScriptedModel(["```repl\nprint(search('lamp', k=3))\n```", "FINAL(ok)"])
    result = make_rlm(sandbox_factory, root, tools={"search": search}).run("q", "ctx")
    assert "['lamp result 0', 'lamp result 1', 'lamp result 2']" in feedback(root, 1)
    system = root.calls[0][0]["content"]
    assert "search(query: str, k: int = 2) -> list[str]" in system and "Search the product catalogue" in system
    assert result.sub_calls == 1 and any(e["event"] == "tool_call" for e in result.trajectory)


@pytest.mark.loop
def test_a_tool_exception_is_raised_in_the_cell(sandbox_factory):
    def lookup(key: str) -> str:
        """Look a key up."""
        raise KeyError(f"no entry {key}")

    root = ScriptedModel(["```repl\ntry:\n    lookup('x')\nexcept Exception as e:\n    print(type(e).__name__, e)\n```",
                          "FINAL(ok)"])
    make_rlm(sandbox_factory, root, tools={"lookup": lookup}).run("q", "ctx")
    assert "KeyError 'no entry x'" in feedback(root, 1)


@pytest.mark.loop
def test_non_json_results_and_arguments_get_a_clear_error(sandbox_factory):
    root = ScriptedModel(["```repl\ntry:\n    bad()\nexcept ToolError as e:\n    print('result:', e)\n"
                          "try:\n    echo({1, 2})\nexcept TypeError as e:\n    print('args:', e)\n```", "FINAL(ok)"])
    tools = {"bad": lambda: object(), "echo": lambda x: x}
    make_rlm(sandbox_factory, root, tools=tools).run("q", "ctx")
    seen = feedback(root, 1)
    assert "result: tool bad returned a object, which is not JSON-serialisable" in seen
    assert "args: echo() takes only JSON-serialisable arguments" in seen


@pytest.mark.loop
def test_wrong_arguments_to_a_tool_are_reported(sandbox_factory):
    root = ScriptedModel(["```repl\nsearch()\n```", "FINAL(ok)"])
    make_rlm(sandbox_factory, root, tools={"search": search}).run("q", "ctx")
    assert "ToolError" in feedback(root, 1) and "query" in feedback(root, 1)


@pytest.mark.loop
def test_tool_calls_count_against_the_sub_call_budget(sandbox_factory):
    root = ScriptedModel(["```repl\nfor i in range(5):\n    search('x')\n```", "FINAL(ok)"])
    result = make_rlm(sandbox_factory, root, tools={"search": search}, max_sub_calls=2).run("q", "ctx")
    assert result.sub_calls == 2 and result.status == "budget_exhausted"


@pytest.mark.parametrize("tools, message", [
    ({"llm_query": search}, "taken by a built-in helper"),
    ({"not valid": search}, "identifier"),
    ({"x": 42}, "callable"),
    ({"print": search}, "would replace Python's built-in print"),
    ({"len": search}, "would replace Python's built-in len"),
    ({"class": search}, "keyword"),
])
def test_bad_tools_are_refused_up_front(tools, message):
    with pytest.raises((ValueError, TypeError), match=message):
        RLM(model="m", tools=tools)
