"""Sessions: one sandbox and its variables across questions, with a bounded prompt."""

from __future__ import annotations

import asyncio

import pytest

from rlm_sandbox.core.session import DIGEST_TURNS
from rlm_sandbox.testing import ScriptedModel
from tests.rlm_helpers import make_rlm

pytestmark = pytest.mark.docker


def test_a_later_question_uses_what_an_earlier_one_computed(sandbox_factory, docker_client):
    root = ScriptedModel([
        "```repl\nwords = context.split()\nFINAL(len(words))\n```",
        "```repl\nFINAL(sorted(words)[0])\n```",
    ])
    rlm = make_rlm(sandbox_factory, root)
    with rlm.session("pear apple fig") as session:
        first = session.ask("How many words?")
        container = session._sandbox.container_id
        second = session.ask("Which word comes first alphabetically?")
        assert session._sandbox.container_id == container
    assert (first.answer, second.answer) == ("3", "apple")
    second_prompt = root.calls[1]
    assert len(second_prompt) == 2  # system + one user message: the first conversation is not replayed
    assert "Q1: How many words?\nA1: 3" in second_prompt[1]["content"]
    assert not docker_client.api.containers(all=True, filters={"id": container})


@pytest.mark.loop
def test_the_digest_stays_bounded_over_many_questions(sandbox_factory):
    root = ScriptedModel(responder=lambda m: "FINAL(" + "long answer " * 200 + ")")
    with make_rlm(sandbox_factory, root).session("ctx") as session:
        for i in range(12):
            session.ask(f"question {i}")
    sizes = [len(call[1]["content"]) for call in root.calls]
    plateau = sizes[DIGEST_TURNS + 1:]  # once the digest is full it stops growing
    assert max(plateau) - min(plateau) < 20 and max(sizes) < 8_000
    assert "[3 older question(s) not shown]" in root.calls[-1][1]["content"]  # 11 earlier, 8 shown


@pytest.mark.loop
def test_async_session(sandbox_factory):
    root = ScriptedModel(["```repl\nn = len(context)\nFINAL(n)\n```", "```repl\nFINAL(n * 2)\n```"])

    async def main():
        async with make_rlm(sandbox_factory, root).session("abcd") as session:
            return [(await session.aask("q1")).answer, (await session.aask("q2")).answer]

    assert asyncio.run(main()) == ["4", "8"]


@pytest.mark.loop
def test_asking_a_closed_session_says_how_to_open_it(sandbox_factory):
    session = make_rlm(sandbox_factory, ScriptedModel(["FINAL(x)"])).session("ctx")
    with pytest.raises(RuntimeError, match="with rlm.session"):
        session.ask("q")
