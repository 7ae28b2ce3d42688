"""``rlm-sandbox trace show`` (a real subprocess) on the traces of real runs: completed,
with child runs, a budget stop, and an interrupted run; --depth, --iteration, --full; partial
and broken files."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.trace_runs import REPO, traces  # noqa: F401 - the session fixture

pytestmark = pytest.mark.docker


def show(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "COLUMNS": "160", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "rlm_sandbox", "trace", "show", *map(str, args)],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)


def indent_of(lines: list[str], text: str) -> int:
    line = next(line for line in lines if text in line)
    return line.index(text)


def test_a_completed_run_as_a_tree(traces):
    done = show(traces.completed)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "PARTIAL" not in out
    assert "· completed · answer from final" in out and "query: What does it say?" in out
    assert "answer: the summary is short" in out
    for expected in ("iteration 1", "iteration 2", "iteration 3", "cell 1 · ok",
                     "llm_query · scripted/", "prompt: Summarise: a context about gardens", "answer: a short summary",
                     "final · completed · answer from final: the summary is short"):
        assert expected in out, expected
    # tokens and cost per step, with running totals (a scripted model has no price: unknown)
    assert "iteration 2 · " in out and " · total " in out and "unknown" in out
    lines = out.splitlines()
    assert indent_of(lines, "llm_query · scripted/") > indent_of(lines, "cell 1 · ok · ")  # nested under its cell
    # long output is clipped unless --full
    assert "line 60 of the long output" not in out and "--full shows everything" in out
    full = show(traces.completed, "--full").stdout
    assert "line 60 of the long output" in full and "--full shows everything" not in full


def test_child_runs_nest_under_the_cell_that_started_them_and_depth_limits_them(traces):
    done = show(traces.children)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    children = [line for line in lines if "child run " in line]
    assert len(children) == 2 and all("completed" in line and "count" in line for line in children)
    cell = indent_of(lines, "cell 1 · ok")
    assert all(line.index("child run ") > cell for line in children)
    # each child is a run of its own, drawn in full: its iteration, its cell, its final answer
    assert sum("final · completed · answer from final: 2" in line for line in lines) == 1
    assert sum("final · completed · answer from final: 3" in line for line in lines) == 1
    assert indent_of(lines, "answer from final: 2") > indent_of(lines, "child run ")
    assert sum("llm_query_batched [" in line for line in lines) == 2
    shallow = show(traces.children, "--depth", "0").stdout
    assert shallow.count("not expanded") == 2 and "answer from final: 2" not in shallow


def test_a_budget_stop_is_marked_and_the_fallback_answer_labelled(traces):
    done = show(traces.budget)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "budget_exhausted" in out and "budget exhausted: max_sub_calls (2 of 2); the run ends" in out
    assert "refused: no llm_query left" in out
    assert "answer from answer_now (NOT a FINAL answer)" in out
    assert "answer now · " in out  # the extra answer-now request is a turn of its own


def test_an_interrupted_run_says_it_is_partial(traces):
    assert traces.interrupted_cli.returncode == 130, traces.interrupted_cli.stderr
    done = show(traces.interrupted)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith("PARTIAL TRACE: the run was interrupted")
    assert "· interrupted" in out and "interrupted after 2 iteration(s): no final answer" in out
    assert "cell 1 · ok" in out and "step one" in out


def test_a_file_cut_short_is_read_and_called_partial(traces, tmp_path):
    lines = traces.completed.read_text().splitlines()
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(lines[: len(lines) // 2]) + "\n" + lines[len(lines) // 2][:40])
    done = show(cut)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("PARTIAL TRACE: the trace ends before the run finished; the last line was cut "
                                  "short (skipped)")
    assert "the trace ends here, before the run finished" in done.stdout


def test_one_iteration_only(traces):
    done = show(traces.completed, "--iteration", "2")
    assert done.returncode == 0, done.stderr
    assert "iteration 2" in done.stdout and "iteration 1 ·" not in done.stdout and "iteration 3" not in done.stdout
    missing = show(traces.completed, "--iteration", "9")  # issue 17: an iteration it lacks is exit 2
    assert missing.returncode == 2 and missing.stdout == ""
    assert "--iteration 9: the trace has no iteration 9; it has iterations 1-3" in missing.stderr


@pytest.mark.parametrize("make, expected", [
    (lambda tmp: tmp / "nope.jsonl", "cannot read trace"),
    (lambda tmp: tmp, "is a directory"),
    (lambda tmp: (tmp / "notes.txt", (tmp / "notes.txt").write_text("hello\nworld\n"))[0],
     "is not an rlm-sandbox trace"),
])
def test_a_file_that_is_no_trace_gets_one_line_and_exit_2(tmp_path, make, expected):
    done = show(make(tmp_path))
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1 and expected in done.stderr, done.stderr


def test_bad_options_exit_2(traces):
    assert show(traces.completed, "--depth", "-1").returncode == 2
    assert show(traces.completed, "--iteration", "0").returncode == 2
