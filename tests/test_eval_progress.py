"""The suite's progress: plain lines off a terminal, a rich bar on one; both say done, failed,
running, the mean score, tokens, cost (unknown stays unknown) and an ETA."""

from __future__ import annotations

import io

from rlm_sandbox.eval.progress import SuiteProgress
from rlm_sandbox.eval.results import TaskResult


def result(task_id: str, score: float, cost: float | None, status: str = "completed") -> TaskResult:
    return TaskResult(task_id=task_id, source="sniah", query="q", status=status, score=score, passed=score >= 1,
                      scorer="exact", input_tokens=100, output_tokens=20, cost_usd=cost, model="m", sub_model="m")


def test_plain_lines_when_not_a_terminal():
    stream = io.StringIO()
    progress = SuiteProgress(stream=stream, scripted=True)
    progress.start(3, skipped=2)
    progress.begin()
    progress.begin()
    progress.done(result("a", 1.0, 0.01))
    progress.done(result("b", 0.0, None, status="crashed"))
    text = stream.getvalue()
    assert "2 task run(s) already in the output directory are skipped" in text
    assert "SCRIPTED" in text and "3 task run(s) to do" in text
    assert "[1/3] a e1 passed score=1.00" in text and "cost $0.0100" in text and "ETA" in text
    assert "[2/3] b e1 ERROR" in text and "done 2 failed 1 running 0 mean 0.500 tokens 240 cost unknown" in text


def test_a_rich_bar_on_a_terminal():
    stream = io.StringIO()
    progress = SuiteProgress(stream=stream, rich=True)
    progress.start(2)
    progress.begin()
    progress.done(result("a", 1.0, 0.5))
    progress.close()
    assert "done 1 failed 0 running 0 mean 1.000" in stream.getvalue() and "1/2" in stream.getvalue()


def test_the_running_totals_say_how_much_input_was_cached():
    stream = io.StringIO()
    progress = SuiteProgress(stream=stream)
    progress.start(2)
    first = result("a", 1.0, 0.01)
    first.cached_input_tokens = 64
    progress.done(first)
    assert "tokens 120 (64 cached) cost $0.0100" in stream.getvalue()
