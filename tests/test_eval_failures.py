"""Eval never goes green by accident and never dies of one task: a stalled task, a task whose
run raises and a scorer that raises are each recorded and the suite goes on; any task error
fails the suite unless --fail-on-error allows it; a permanent provider error (a refused key)
stops the tasks left at once (exit 4); task files without `expected` or a context source, and
thresholds out of range, are refused before anything runs. Real Docker sandboxes, scripted
models through litellm, a real HTTP model server, the CLI as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlm_sandbox.eval import LocalBackend, SuiteConfig, TaskFileError, execute_job, load_tasks, run_suite
from rlm_sandbox.eval.results import read_results
from rlm_sandbox.eval.runner import EvalError
from rlm_sandbox.testing import OpenAICompatibleServer, Reply, ScriptedModel
from tests.conftest import TEST_SESSION, TEST_SESSION_LABEL

REPO = Path(__file__).resolve().parent.parent
LABELS = {TEST_SESSION_LABEL: TEST_SESSION}
QUERY = "What is the special magic number for a-b mentioned in the provided text?"


def task(task_id: str, **extra: object) -> dict:
    return {"id": task_id, "query": QUERY, "context": "One of the special magic numbers for a-b is: 1234567.",
            "expected": ["1234567"], "scorer": {"name": "string_match_all"}, **extra}


def task_file(path: Path, *tasks: dict) -> Path:
    path.write_text("".join(json.dumps(t) + "\n" for t in tasks))
    return path


def exploding_scorer(answer: str, expected: object) -> float:
    """A user's scorer with a bug (named as tests.test_eval_failures:exploding_scorer)."""
    raise RuntimeError("the scorer fell over")


def eval_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("RLM_SANDBOX_")}
    full.update({"PYTHONPATH": str(REPO), "LITELLM_LOCAL_MODEL_COST_MAP": "True", **(env or {})})
    return subprocess.run([sys.executable, "-m", "rlm_sandbox", "eval", *args, "--label",
                           f"{TEST_SESSION_LABEL}={TEST_SESSION}", "--quiet"], cwd=cwd, env=full,
                          capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)


# --- item 2: whatever one task does, it is recorded and the suite goes on --------------------

@pytest.mark.docker
def test_a_stalled_task_is_recorded_as_a_limit_and_the_suite_goes_on(tmp_path, sandbox_image):
    """The scripted model repeats the same reply: the run ends `stalled`, which the results
    take (it used to be a pydantic error that killed the suite with no results and no JUnit)."""
    with ScriptedModel(responder=lambda messages: "```repl\nprint('still thinking')\n```", name="stall-i17") as model:
        summary = run_suite([task_file(tmp_path / "t.jsonl", task("a"), task("b"))],
                            SuiteConfig(model=model.model, out=tmp_path / "out", labels=LABELS, progress=False,
                                        concurrency=2, options={"stall_repeats": 2}))
    results = read_results(tmp_path / "out")
    assert sorted(r.status for r in results.values()) == ["stalled", "stalled"]
    assert all(r.limit_hit and not r.errored and not r.passed for r in results.values())
    assert (summary.runs, summary.limit_hits, summary.errors) == (2, 2, 0)
    junit = (tmp_path / "out" / "junit.xml").read_text()
    assert junit.count("<testcase") == 2 and junit.count("<failure") == 2


class RaisingRunBackend(LocalBackend):
    """Runs task `boom` through the real pipeline with a sandbox factory that raises, so its
    run raises; every other task runs normally."""

    async def run(self, job):  # type: ignore[no-untyped-def]  # a test double
        if job.task.id != "boom":
            return await super().run(job)

        def no_sandbox(*args, **kwargs):
            raise RuntimeError("no sandbox for this task")

        return await execute_job(job, sandbox_factory=no_sandbox)


@pytest.mark.docker
def test_a_task_whose_run_raises_and_a_scorer_that_raises_are_recorded_as_their_reason(tmp_path, sandbox_image):
    from rlm_sandbox import Settings

    tasks = task_file(tmp_path / "t.jsonl", task("boom"), task("fine"),
                      task("bad-scorer", scorer={"name": "tests.test_eval_failures:exploding_scorer"}))
    spec = Settings.from_options(model="scripted/oracle").sandbox_spec()
    spec = spec.model_copy(update={"labels": {**spec.labels, **LABELS}})
    summary = run_suite([tasks], SuiteConfig(model="scripted/oracle", out=tmp_path / "out", labels=LABELS,
                                             progress=False), backend=RaisingRunBackend(spec, size=1))
    results = {key[0]: r for key, r in read_results(tmp_path / "out").items()}
    assert results["boom"].status == "crashed" and "RuntimeError: no sandbox for this task" in results["boom"].error
    assert results["fine"].passed
    assert not results["bad-scorer"].passed and "the scorer fell over" in results["bad-scorer"].error
    assert summary.runs == 3 and summary.errors == 1
    assert any("1 of 3 runs ended in error" in reason and "boom e1: RuntimeError: no sandbox" in reason
               for reason in summary.exit_reasons), summary.exit_reasons
    assert "no sandbox for this task" in (tmp_path / "out" / "report.md").read_text()


# --- item 3: any task error fails the suite; a permanent provider error stops it -------------

@pytest.mark.docker
def test_every_task_in_error_fails_the_suite_unless_fail_on_error_allows_it(tmp_path, sandbox_image):
    """An empty replay directory: every request misses its cassette. That used to exit 0.
    A cassette miss is not a permanent error (each task has its own cassette): both tasks run."""
    tasks = task_file(tmp_path / "t.jsonl", task("a"), task("b"))
    (tmp_path / "tape").mkdir()
    (tmp_path / "elsewhere").mkdir()
    done = eval_cli("run", str(tasks), "--model", "scripted/oracle", "--out", "o", "--replay", "tape",
                    "--html", "elsewhere/r.html", cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    assert "reports: o/summary.json, o/report.md, o/junit.xml, elsewhere/r.html" in done.stderr  # where they are
    assert (tmp_path / "elsewhere" / "r.html").is_file()
    assert "FAILED: 2 of 2 runs ended in error (any error fails the suite" in done.stderr
    assert "the first: a e1: CassetteError: no cassette at tape/a.e1.jsonl" in done.stderr
    assert len((tmp_path / "o" / "results.jsonl").read_text().splitlines()) == 2
    common = dict(model="scripted/oracle", out=tmp_path / "o", labels=LABELS, progress=False, replay=tmp_path / "tape")
    for allowed, fails in ((1, False), (0.5, True), (2, False), (False, False), (True, True), (None, True)):
        summary = run_suite([tasks], SuiteConfig(fail_on_error=allowed, **common))  # resumed: nothing runs again
        assert summary.ok is not fails, (allowed, summary.exit_reasons)


class Refused(Exception):
    status_code = 401


@pytest.mark.docker
def test_a_refused_key_stops_the_remaining_tasks_at_once_with_exit_4(tmp_path, sandbox_image):
    tasks = task_file(tmp_path / "t.jsonl", *(task(f"t{i}") for i in range(6)))
    with OpenAICompatibleServer(lambda messages: Reply(error=Refused("Incorrect API key provided"))) as server:
        done = eval_cli("run", str(tasks), "--model", "openai/some-model", "--out", "o", "--concurrency", "1",
                        cwd=tmp_path, env={"RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-wrong",
                                           "RLM_SANDBOX_MAX_RETRIES": "0"})
        asked = len(server.requests)
    assert done.returncode == 4, done.stderr
    assert "STOPPED: 5 task run(s) did not run" in done.stderr
    assert "stopped after a provider error no retry can mend, in t0 e1" in done.stderr
    assert asked == 1  # one call refused, no other task asked
    results = read_results(tmp_path / "o")
    assert list(results) == [("t0", 1)] and results[("t0", 1)].permanent
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["not_run"] == 5 and summary["stopped"]
    # The key is fixed: the same command resumes, the stopped task included.
    with OpenAICompatibleServer(lambda messages: "FINAL(1234567)") as server:
        again = eval_cli("run", str(tasks), "--model", "openai/some-model", "--out", "o", "--concurrency", "2",
                         cwd=tmp_path, env={"RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-right",
                                            "RLM_SANDBOX_MAX_RETRIES": "0"})
    assert again.returncode == 0, again.stderr
    assert sorted(key[0] for key in read_results(tmp_path / "o")) == [f"t{i}" for i in range(6)]
    assert "mean score 1.0000" in again.stdout


# --- item 5: task files and thresholds are checked before anything runs -----------------------

def test_a_task_without_expected_or_without_a_context_is_refused_with_line_and_field(tmp_path):
    path = task_file(tmp_path / "t.jsonl", task("ok"), {k: v for k, v in task("x").items() if k != "expected"},
                     {k: v for k, v in task("y").items() if k != "context"}, task("z", expected=None),
                     task("w", generator={"name": "sniah"}))
    with pytest.raises(TaskFileError) as caught:
        load_tasks(path)
    text = str(caught.value)
    assert "line 2, field 'expected': missing" in text
    assert "line 3, field 'context': no context: give exactly one of context" in text
    assert "line 4, field 'expected': missing" in text
    assert "line 5, field 'generator': give the context once: context and generator were both given" in text
    assert "line 1" not in text


@pytest.mark.parametrize("option, value", [("min_score", 2), ("min_score", -0.1), ("fail_on_error", -1),
                                           ("fail_on_error", 2.5)])
def test_thresholds_out_of_range_are_refused_before_anything_runs(tmp_path, option, value):
    with pytest.raises(EvalError, match=f"--{option.replace('_', '-')} {value}: give"):
        run_suite([task_file(tmp_path / "t.jsonl", task("a"))],
                  SuiteConfig(model="scripted/oracle", out=tmp_path / "o", progress=False, **{option: value}))
    assert not (tmp_path / "o").exists()


def test_the_cli_refuses_min_score_2_with_exit_2(tmp_path):
    tasks = task_file(tmp_path / "t.jsonl", task("a"))
    done = eval_cli("run", str(tasks), "--model", "scripted/oracle", "--out", "o", "--min-score", "2", cwd=tmp_path)
    assert done.returncode == 2 and "--min-score 2.0: give a mean score from 0 to 1" in done.stderr, done.stderr
    both = eval_cli("run", str(tasks), "--model", "scripted/oracle", "--out", "o", "--fail-on-error", "0.1",
                    "--no-fail-on-error", cwd=tmp_path)
    assert both.returncode == 2 and "not both" in both.stderr
    assert not (tmp_path / "o").exists()
