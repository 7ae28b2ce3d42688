"""The suite's summary and its reports, from results as data (no Docker): epochs averaged per
task, standard error, breakdowns per generator and per length, unknown cost kept unknown,
the Markdown and JUnit reports, and resuming from results.jsonl (the newer line wins)."""

from __future__ import annotations

import math
from statistics import stdev

import pytest

from rlm_sandbox.eval.reports import write_reports
from rlm_sandbox.eval.results import ResultsFile, TaskResult, read_results
from rlm_sandbox.eval.summary import summarise


def result(task_id: str, score: float, *, epoch: int = 1, source: str = "sniah", length: int | None = 1024,
           status: str = "completed", cost: float | None = 0.01, **extra) -> TaskResult:
    return TaskResult(task_id=task_id, epoch=epoch, source=source, length=length, query="q", expected=["x"],
                      answer="x" if score == 1 else "y", status=status, score=score, passed=score >= 1.0,
                      scorer="exact", cost_usd=cost, input_tokens=100, output_tokens=10, duration_s=1.5,
                      model="m", sub_model="m", trajectory=f"traces/{task_id}.e{epoch}.jsonl", **extra)


def test_epochs_are_averaged_per_task_before_the_mean_and_its_standard_error():
    results = [result("a", 1.0), result("a", 0.0, epoch=2), result("b", 1.0), result("b", 1.0, epoch=2),
               result("c", 0.0), result("c", 0.0, epoch=2, status="error")]
    s = summarise(results, model="m", sub_model="m", scripted=False, epochs=2)
    assert (s.tasks, s.runs, s.mean_score) == (3, 6, 0.5)  # tasks a, b, c: 0.5, 1.0, 0.0
    assert s.stderr == pytest.approx(stdev([0.5, 1.0, 0.0]) / math.sqrt(3), abs=1e-6)
    assert (s.passed, s.failed, s.pass_rate, s.errors, s.error_share) == (3, 3, 0.5, 1, pytest.approx(1 / 6, abs=1e-6))
    assert (s.input_tokens, s.output_tokens, s.cost_usd) == (600, 60, pytest.approx(0.06))


def test_breakdowns_per_generator_and_length_and_an_unknown_cost_stays_unknown():
    results = [result("s1", 1.0, length=1024), result("s2", 0.0, length=8192),
               result("p1", 1.0, source="salary", length=None, records=100, cost=None)]
    s = summarise(results, model="m", sub_model="m", scripted=True, epochs=1)
    assert set(s.by_length) == {"1,024 tokens", "8,192 tokens", "100 records"}
    assert list(s.by_length).index("1,024 tokens") < list(s.by_length).index("8,192 tokens")
    assert s.by_length["8,192 tokens"].mean_score == 0.0 and s.by_length["1,024 tokens"].mean_score == 1.0
    assert s.by_generator["sniah"].mean_score == 0.5 and s.by_generator["sniah"].cost_usd == pytest.approx(0.02)
    assert s.by_generator["salary"].cost_usd is None and s.cost_usd is None  # unknown, never $0


def test_reports_and_resume_from_the_results_file(tmp_path):
    file = ResultsFile(tmp_path)
    file.append(result("a", 0.0, status="error", error="the provider is down"))
    file.append(result("b", 1.0))
    file.append(result("a", 1.0))  # a rerun (--force, --retry-on-error): the newer line wins
    done = read_results(tmp_path)
    assert sorted(done) == [("a", 1), ("b", 1)] and done[("a", 1)].score == 1.0
    results = [done[("a", 1)], done[("b", 1)], result("c", 0.0, status="crashed", error="boom")]
    s = summarise(results, model="m", sub_model="m", scripted=False, epochs=1)
    write_reports(tmp_path, results, s, junit=None, html=None)
    report = (tmp_path / "report.md").read_text()
    assert "SCRIPTED" not in report and "| [c](traces/c.e1.jsonl) e1 |" in report and "| crashed: boom |" in report
    junit = (tmp_path / "junit.xml").read_text()
    assert 'tests="3"' in junit and 'errors="1"' in junit and 'failures="0"' in junit
    assert (tmp_path / "summary.json").is_file() and (tmp_path / "report.html").is_file()
