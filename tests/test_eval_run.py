"""Evaluation suites end to end: real Docker sandboxes from a warm pool, the scripted oracle
through litellm, real HTTP for record and replay, the CLI as a subprocess, the HTML report in
a headless browser."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from rlm_sandbox.eval import SuiteConfig, run_suite
from rlm_sandbox.eval.oracle import respond
from rlm_sandbox.eval.results import read_results
from rlm_sandbox.events import read_events
from rlm_sandbox.testing import OpenAICompatibleServer, Reply
from tests.conftest import TEST_SESSION, TEST_SESSION_LABEL

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parent.parent
LABELS = {TEST_SESSION_LABEL: TEST_SESSION}
SMALL = {"tokens": "1024,4096", "records": "40,100", "users": "6", "docs": "12", "hops": "2,3"}
GENERATORS = ("salary", "sniah", "oolong", "oolong-pairs", "multi-hop")


def small(name: str) -> dict[str, str]:
    from rlm_sandbox.eval.generators import GENERATORS as ALL

    return {key: value for key, value in SMALL.items() if key in ALL[name].params}


def suite(tmp_path: Path, name: str = "out", **kwargs):
    sources = kwargs.pop("sources", ["sniah"])
    kwargs.setdefault("model", "scripted/oracle")
    return run_suite(sources, SuiteConfig(out=tmp_path / name, labels=LABELS, progress=False, **kwargs))


@pytest.mark.parametrize("generator", GENERATORS)
def test_the_oracle_scores_one_on_every_generator(tmp_path, sandbox_image, generator):
    summary = suite(tmp_path, sources=[generator], n=2, params=small(generator), concurrency=2, baseline="direct")
    assert (summary.mean_score, summary.pass_rate, summary.errors, summary.scripted) == (1.0, 1.0, 0, True)
    out = tmp_path / "out"
    for name in ("results.jsonl", "summary.json", "report.md", "junit.xml", "report.html"):
        assert (out / name).is_file(), name
    for result in read_results(out).values():
        assert result.answer_from == "final" and result.sub_calls >= 1 and result.scripted
        assert result.baseline is not None and result.baseline.score == 1.0
        trace = read_events(out / result.trajectory)
        assert not trace.partial and trace.events[0].event == "run_start"
    assert "SCRIPTED" in (out / "report.md").read_text()


def test_salary_report_has_the_original_tables_columns(tmp_path, sandbox_image):
    suite(tmp_path, sources=["salary"], n=1, params={"records": "20"}, baseline="direct")
    report = (tmp_path / "out" / "report.md").read_text()
    assert ("| Records | Context | Expected | RLM Answer | Direct Answer | RLM Cost | Direct Cost | RLM Time | "
            "Direct Time | Winner |") in report


def test_record_then_replay_with_the_server_gone_gives_identical_results(tmp_path, sandbox_image):
    tape = tmp_path / "tape"
    kwargs = dict(sources=["salary", "oolong"], n=2, params={"records": "30", "tokens": "1024"}, concurrency=2,
                  model="openai/oracle-over-http", baseline="direct")
    with OpenAICompatibleServer(respond) as server:
        recorded = suite(tmp_path, "recorded", record=tape,
                         options={"api_base": server.url, "api_key": "sk-test-0123456789abcdef", "max_retries": 0},
                         **kwargs)
    assert recorded.mean_score == 1.0 and len(list(tape.glob("*.jsonl"))) == 4
    assert "sk-test-0123456789abcdef" not in "".join(p.read_text() for p in tape.glob("*.jsonl"))
    # The server is closed: a call that reached the network would fail.
    replayed = suite(tmp_path, "replayed", replay=tape, options={"api_base": server.url, "max_retries": 0}, **kwargs)
    before, after = read_results(tmp_path / "recorded"), read_results(tmp_path / "replayed")
    assert before.keys() == after.keys()
    for key in before:
        a, b = before[key], after[key]
        assert (a.answer, a.score, a.status, a.input_tokens, a.output_tokens, a.cost_usd, a.sub_calls) == \
            (b.answer, b.score, b.status, b.input_tokens, b.output_tokens, b.cost_usd, b.sub_calls)
        assert (a.baseline.answer, a.baseline.input_tokens) == (b.baseline.answer, b.baseline.input_tokens)
    assert replayed.mean_score == recorded.mean_score and replayed.errors == 0


def test_a_request_not_in_the_cassettes_fails_the_task_loudly(tmp_path, sandbox_image):
    suite(tmp_path, "recorded", sources=["sniah"], n=1, params={"tokens": "1024"}, record=tmp_path / "tape")
    replayed = suite(tmp_path, "replayed", sources=["sniah"], n=1, seed=99, params={"tokens": "1024"},
                     replay=tmp_path / "tape")  # another seed: another question
    result = next(iter(read_results(tmp_path / "replayed").values()))
    assert replayed.errors == 1 and result.status == "error" and not result.passed
    assert "task sniah-0000 epoch 1" in result.error and "not in the cassette" in result.error
    assert "closest recorded request" in result.error


def test_resume_skips_finished_tasks_and_force_reruns(tmp_path, sandbox_image):
    suite(tmp_path, n=2, params={"tokens": "1024"})
    first = read_results(tmp_path / "out")
    stamp = {key: (tmp_path / "out" / r.trajectory).stat().st_mtime_ns for key, r in first.items()}
    summary = suite(tmp_path, n=3, params={"tokens": "1024"})
    assert summary.tasks == 3
    lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert len(lines) == 3  # only the new task ran
    assert all((tmp_path / "out" / first[key].trajectory).stat().st_mtime_ns == stamp[key] for key in first)
    suite(tmp_path, n=3, params={"tokens": "1024"}, force=True)
    assert len((tmp_path / "out" / "results.jsonl").read_text().splitlines()) == 6
    with pytest.raises(ValueError, match="holds results of another run"):
        suite(tmp_path, n=3, params={"tokens": "1024"}, model="scripted/other")


def test_a_task_that_hits_a_limit_is_scored_and_marked(tmp_path, sandbox_image):
    summary = suite(tmp_path, n=1, params={"tokens": "1024"}, options={"max_sub_calls": 0})
    result = next(iter(read_results(tmp_path / "out").values()))
    assert result.status == "budget_exhausted" and result.limit_hit and result.answer_from != "final"
    assert result.score == 0.0 and summary.limit_hits == 1 and summary.errors == 0


def test_junit_xml_is_read_by_a_junit_consumer(tmp_path, sandbox_image):
    junitparser = pytest.importorskip("junitparser")
    tasks = tmp_path / "tasks.jsonl"
    lines = [{"id": "right", "query": "What is the special magic number for a-b mentioned in the provided text?",
              "context": "x\nOne of the special magic numbers for a-b is: 1234567.\ny", "expected": ["1234567"],
              "scorer": {"name": "string_match_all"}},
             {"id": "wrong", "query": "What is the special magic number for a-b mentioned in the provided text?",
              "context": "One of the special magic numbers for a-b is: 7654321.", "expected": ["1234567"],
              "scorer": {"name": "string_match_all"}}]
    tasks.write_text("\n".join(map(json.dumps, lines)))
    suite(tmp_path, sources=[tasks], junit=tmp_path / "ci.xml")
    xml = junitparser.JUnitXml.fromfile(str(tmp_path / "ci.xml"))
    suites = list(xml)
    assert len(suites) == 1 and suites[0].tests == 2 and suites[0].failures == 1 and suites[0].errors == 0
    cases = {case.name: case for case in suites[0]}
    assert cases["right"].is_passed and not cases["wrong"].is_passed
    assert isinstance(cases["wrong"].result[0], junitparser.Failure)
    assert "below 1.0" in cases["wrong"].result[0].message and cases["right"].time > 0
    assert "SCRIPTED" in cases["right"].system_out


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    return subprocess.run([sys.executable, "-m", "rlm_sandbox", "eval", *args, "--label",
                           f"{TEST_SESSION_LABEL}={TEST_SESSION}", "--quiet"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_cli_exit_codes_for_min_score_and_fail_on_error(tmp_path, sandbox_image):
    tasks = tmp_path / "tasks.jsonl"
    wrong = {"id": "w", "query": "What is the special magic number for a-b mentioned in the provided text?",
             "context": "One of the special magic numbers for a-b is: 7654321.", "expected": ["1234567"],
             "scorer": {"name": "string_match_all"}}
    tasks.write_text(json.dumps(wrong) + "\n")
    below = run_cli("run", str(tasks), "--model", "scripted/oracle", "--out", "o1", "--min-score", "0.5", cwd=tmp_path)
    assert below.returncode == 1, below.stderr
    assert "mean score 0.0000 is below --min-score 0.5" in below.stderr and "mean score 0.0000" in below.stdout
    fine = run_cli("run", str(tasks), "--model", "scripted/oracle", "--out", "o1", "--min-score", "0", cwd=tmp_path)
    assert fine.returncode == 0, fine.stderr  # resumed: nothing ran again
    # An unenforceable budget (the oracle has no price) makes every run end in error.
    errors = run_cli("run", str(tasks), "--model", "scripted/oracle", "--out", "o2", "--task-cost", "0.5",
                     "--fail-on-error", "0.5", cwd=tmp_path)
    assert errors.returncode == 1 and "more than --fail-on-error 0.5" in errors.stderr
    usage = run_cli("run", "no-such.jsonl", "--model", "scripted/oracle", "--out", "o3", cwd=tmp_path)
    assert usage.returncode == 2 and "the file does not exist" in usage.stderr


def test_the_html_report_opens_in_a_headless_browser_with_no_network_request(tmp_path, sandbox_image):
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.fail("Chromium is not installed: scripts/setup.sh installs Debian's chromium")
    suite(tmp_path, sources=["sniah", "salary"], n=1, params={"tokens": "1024", "records": "20"}, baseline="direct")
    page_url = (tmp_path / "out" / "report.html").resolve().as_uri()
    requests: list[str] = []
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page()
        page.on("request", lambda request: requests.append(request.url))
        page.goto(page_url)
        assert page.title().startswith("rlm-sandbox eval")
        assert page.locator("#tasks tr").count() == 3  # header + 2 tasks
        assert page.locator("svg rect").count() == 2  # a bar per context length
        assert "SCRIPTED" in page.inner_text("body")
        browser.close()
    assert requests == [page_url], requests  # the page itself, nothing else


def test_a_10m_token_sniah_task_completes_with_the_oracle(tmp_path, sandbox_image):
    """About 4 s and 290 MiB of host memory on this machine (benchmarks/bench_eval.py): no flag needed."""
    summary = suite(tmp_path, n=1, params={"tokens": "10000000"})
    result = next(iter(read_results(tmp_path / "out").values()))
    assert summary.mean_score == 1.0 and result.context_chars >= 40_000_000 and result.sub_calls >= 1


def test_epochs_and_retry_on_error(tmp_path, sandbox_image):
    """Every task runs once per epoch; a run that ended in error is run again (--retry-on-error):
    the model server fails the first root call of each run with a 500, litellm retries nothing."""
    failed: set[str] = set()
    lock = threading.Lock()

    def flaky(messages):
        first = str(messages[1]["content"]) if len(messages) > 1 else ""
        with lock:
            fail = messages[0]["role"] == "system" and len(messages) == 2 and first not in failed
            failed.add(first)
        return Reply(error=RuntimeError("the provider is down")) if fail else respond(messages)

    kwargs = dict(n=2, params={"tokens": "1024"}, model="openai/oracle-over-http", epochs=2, concurrency=2)
    with OpenAICompatibleServer(flaky) as server:
        options = {"api_base": server.url, "api_key": "sk-test-0123456789abcdef", "max_retries": 0}
        plain = suite(tmp_path, "plain", options=options, **kwargs)
        failed.clear()
        retried = suite(tmp_path, "retried", options=options, retry_on_error=1, **kwargs)
    assert (plain.runs, plain.errors, plain.mean_score) == (4, 2, 0.5)  # an epoch's run of each task failed
    results = read_results(tmp_path / "plain")
    assert sorted(results) == [("sniah-0000", 1), ("sniah-0000", 2), ("sniah-0001", 1), ("sniah-0001", 2)]
    assert sorted(r.status for r in results.values()) == ["completed", "completed", "error", "error"]
    assert (retried.runs, retried.errors, retried.mean_score) == (4, 0, 1.0)


def test_a_tasks_own_budget_overrides_the_command_lines(tmp_path, sandbox_image):
    tasks = tmp_path / "tasks.jsonl"
    lines = [{"id": id_, "query": "What is the special magic number for a-b mentioned in the provided text?",
              "context": "x\nOne of the special magic numbers for a-b is: 1234567.\ny", "expected": ["1234567"],
              "scorer": {"name": "string_match_all"}, **extra}
             for id_, extra in (("own", {"budget": {"max_sub_calls": 5}}), ("default", {}))]
    tasks.write_text("\n".join(map(json.dumps, lines)))
    suite(tmp_path, sources=[tasks], options={"max_sub_calls": 0})
    results = {key[0]: result for key, result in read_results(tmp_path / "out").items()}
    assert results["own"].status == "completed" and results["own"].passed
    assert results["default"].status == "budget_exhausted" and results["default"].limit_hit
