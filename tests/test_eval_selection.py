"""Choosing what runs (generators and files, --limit, --task-id) and the direct baseline's
window: no Docker; the baseline's call goes over real HTTP to an OpenAI-compatible server."""

from __future__ import annotations

import asyncio

import pytest

from rlm_sandbox.eval.baseline import ask_direct, split_direct_prompt
from rlm_sandbox.eval.oracle import respond
from rlm_sandbox.eval.runner import EvalError, resolve_tasks, select_tasks
from rlm_sandbox.eval.scorers import score
from rlm_sandbox.eval.tasks import generate_tasks, write_tasks
from rlm_sandbox.models import LLMClient
from rlm_sandbox.testing import OpenAICompatibleServer


def ids(tasks) -> list[str]:
    return [task.id for task in tasks]


def test_limit_takes_the_first_n_or_a_range_from_one():
    tasks = generate_tasks("sniah", n=6, params={"tokens": 1024})
    assert ids(select_tasks(tasks, limit=2)) == ["sniah-0000", "sniah-0001"]
    assert ids(select_tasks(tasks, limit="2-4")) == ["sniah-0001", "sniah-0002", "sniah-0003"]
    assert ids(select_tasks(tasks, limit="5-99")) == ["sniah-0004", "sniah-0005"]
    assert ids(select_tasks(tasks, task_ids=["sniah-0003", "sniah-0001"])) == ["sniah-0001", "sniah-0003"]
    for bad in ("0", "-1", "3-2", "0-2", "two", "1-x"):
        with pytest.raises(EvalError, match=f"--limit {bad}: give a count N"):
            select_tasks(tasks, limit=bad)
    with pytest.raises(EvalError, match="--task-id nope: no such task .*sniah-0000"):
        select_tasks(tasks, task_ids=["nope"])


def test_sources_mix_files_and_generators_and_parameters_go_where_they_belong(tmp_path):
    path = tmp_path / "tasks.jsonl"
    write_tasks(generate_tasks("salary", n=2, params={"records": 20}), path)
    tasks = resolve_tasks([path, "sniah"], n=3, seed=0, params={"tokens": "1024"})
    assert ids(tasks) == ["salary-0000", "salary-0001", "sniah-0000", "sniah-0001", "sniah-0002"]
    assert {task.generator.params["tokens"] for task in tasks[2:]} == {1024}
    with pytest.raises(EvalError, match="parameter records: no generator given takes it .*sniah takes tokens"):
        resolve_tasks(["sniah"], n=1, seed=0, params={"records": "10"})
    with pytest.raises(EvalError, match="repeated: salary-0000"):
        resolve_tasks([path, path], n=1, seed=0, params=None)
    with pytest.raises(EvalError, match="neither a task file nor a built-in generator"):
        resolve_tasks(["snaih"], n=1, seed=0, params=None)


def test_the_direct_baseline_is_cut_to_the_models_window_and_marked(tmp_path):
    """gpt-4's window is 8,192 tokens in litellm's model info: a 32k-token haystack is cut (its
    needle at 90% depth is lost, so the direct answer is wrong); a 1k-token one is sent whole."""
    long, short = generate_tasks("sniah", n=1, params={"tokens": 32768})[0], \
        generate_tasks("sniah", n=1, seed=4, params={"tokens": 1024})[0]
    assert long.metadata["depth"] == 90
    with OpenAICompatibleServer(respond) as server:
        client = LLMClient(max_retries=0, completion_kwargs={"api_base": server.url, "api_key": "sk-test-000000000000"})
        cut = asyncio.run(ask_direct(client, "openai/gpt-4", long.load_context(), long.query))
        whole = asyncio.run(ask_direct(client, "openai/gpt-4", short.load_context(), short.query))
        sent = [split_direct_prompt(request.messages[-1]["content"]) for request in server.requests]
    assert (cut.truncated, cut.window_tokens, cut.window_known, cut.error) == (True, 8192, True, None)
    assert cut.sent_chars < cut.context_chars and len(sent[0][0]) == cut.sent_chars
    assert client.count_tokens("openai/gpt-4", text=sent[0][0]) <= 8192 - 4096
    assert score("string_match_all", cut.answer, long.expected) == 0.0
    assert (whole.truncated, whole.sent_chars) == (False, whole.context_chars)
    assert score("string_match_all", whole.answer, short.expected) == 1.0
