"""Smoke runs of the benchmark scripts, so they cannot rot.

Each script runs with ``--smoke`` as a real subprocess (real Docker, litellm's real path,
scripted models): every benchmark once at the smallest sizes. The test checks that it
exits 0 and prints its JSON object with every benchmark present and nothing failed. It
asserts NO timing: the figures of a smoke run mean nothing.

The selected scripts start together (most of their time is importing litellm and waiting
on Docker), so the whole module takes about as long as the slowest script.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPTS = ["bench_sandbox", "bench_engine", "bench_threads", "bench_cli", "bench_eval", "bench_html",
           "bench_compare", "bench_capacity", "bench_serve", "bench_cost", "bench_fold"]
TIMEOUT_S = 600  # nothing hangs: a stuck benchmark fails the test


def _benches(script: str) -> list[str]:
    """The benchmark names a script declares in ``BENCHES`` (read from its source, so a new
    benchmark is checked too, without importing litellm into the test process)."""
    tree = ast.parse((BENCHMARKS / f"{script}.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "BENCHES" for t in node.targets):
            return list(ast.literal_eval(node.value))
    raise AssertionError(f"{script}.py declares no BENCHES list")


@pytest.fixture(scope="module")
def smoke_runs(request: pytest.FixtureRequest, sandbox_image: str,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Start every selected script's smoke run at once (the image is built first, once)."""
    wanted = [s for s in SCRIPTS if any(getattr(item, "callspec", None) and item.module is request.module
                                        and item.callspec.params.get("script") == s
                                        for item in request.session.items)]
    out = tmp_path_factory.mktemp("bench-smoke")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RLM_SANDBOX_")}
    runs: dict[str, Any] = {}
    for script in wanted:
        stdout, stderr = (out / f"{script}.json").open("wb"), (out / f"{script}.err").open("wb")
        process = subprocess.Popen([sys.executable, str(BENCHMARKS / f"{script}.py"), "--smoke"],
                                   stdout=stdout, stderr=stderr, env=env, cwd=out)
        runs[script] = {"process": process, "files": (stdout, stderr), "out": out / f"{script}.json",
                        "err": out / f"{script}.err"}
    yield runs
    for run in runs.values():
        if run["process"].poll() is None:
            run["process"].kill()
        run["process"].wait()
        for handle in run["files"]:
            handle.close()


def _finish(run: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
    process = run["process"]
    try:
        code = process.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"the smoke run did not finish within {TIMEOUT_S} s:\n{run['err'].read_text()[-3000:]}")
    for handle in run["files"]:
        handle.flush()
    stderr = run["err"].read_text(errors="replace")
    text = run["out"].read_text()
    try:
        report = json.loads(text)
    except json.JSONDecodeError:
        pytest.fail(f"stdout is not one JSON object (exit {code}):\n{text[-2000:]}\nstderr:\n{stderr[-3000:]}")
    assert isinstance(report, dict), report
    return code, report, stderr


def _failures(value: Any, path: str = "") -> list[str]:
    """Every "error" key, and every non-empty "errors", anywhere in a report."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "error" or (key == "errors" and item):
                found.append(f"{path}/{key}: {item!r}"[:500])
            found += _failures(item, f"{path}/{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += _failures(item, f"{path}[{index}]")
    return found


def _expected_keys(script: str, report: dict[str, Any]) -> None:
    if script in ("bench_sandbox", "bench_engine"):
        assert report["smoke"] is True
        assert sorted(report["results"]) == sorted(_benches(script))
        assert all(report["results"][name] for name in _benches(script))
        assert report["errors"] == {} and report["leaked_containers"] == 0
        assert report["checks"], "the figures the checks read are missing"
        if script == "bench_engine":  # py-spy is a test dependency: the profile must really run
            assert "skipped" not in report["results"]["profile"], report["results"]["profile"]
            assert report["results"]["profile"]["samples"] > 0
    elif script == "bench_compare":
        assert report["smoke"] is True and report["errors"] == {} and report["leaked_containers"] == 0
        assert set(report["results"]) | set(report["skipped"]) == set(_benches(script))
        for name, operations in report["results"].items():
            assert set(operations) == {"trivial_cell", "callback", "context_10mb_cell", "start_close"}, name
            assert operations["trivial_cell"]["median_ms"] is not None, name
    elif script == "bench_capacity":
        assert report["smoke"] is True and report["leaked_containers"] == 0
        idle, busy = report["results"]["idle"], report["results"]["busy"]
        assert idle["up"] == 3 and idle["first_failure"] is None, idle
        assert busy["ok"] == busy["cells"] == busy["alive_after"] == 3, busy
    elif script == "bench_threads":
        assert report["smoke"] is True
        assert set(report["llm_query_batched"]) == {"2"} and set(report["rlm_query_batched"]) == {"1"}
        assert all(isinstance(v, int) for v in [*report["llm_query_batched"].values(),
                                                 *report["rlm_query_batched"].values()])
        assert report["leaked_containers"] == 0
    elif script == "bench_eval":
        assert report["smoke"] is True and set(_benches(script)) <= set(report)
        assert report["sniah_10m"]["score"] == 1.0 and report["throughput"]["suite_score"] == 1.0
        assert report["throughput"]["loop_correct"] == report["throughput"]["tasks"]
    elif script == "bench_html":
        assert report["smoke"] is True and report["events"] > 20 and report["html_bytes"] > 0
        assert report["browser"]["requests_other_than_the_file"] == 0
        assert {"goto_load_s", "load_event_end_ms", "expand_sub_call_s"} <= set(report["browser"])
    elif script == "bench_serve":
        assert report["smoke"] is True and set(report["results"]) == set(_benches(script))
        assert all(figure["n"] > 0 for bench in report["results"].values() for figure in bench.values()
                   if isinstance(figure, dict) and "n" in figure)
    elif script == "bench_cost":  # the short trajectory through ours, billed by the prefix-caching server
        assert report["smoke"] is True and set(report["results"]) == {"short"}
        ours = report["results"]["short"]["ours"]
        assert ours["correct"] is True and ours["status"] == "completed", ours
        assert ours["root_requests"] == 5 and ours["sub_requests"] == 3, ours
        assert 0 < ours["cost_with_cache_usd"] <= ours["cost_without_cache_usd"], ours
        assert ours["reported"]["input_tokens"] == ours["root_input_tokens"] + ours["sub_input_tokens"], ours
    elif script == "bench_fold":  # a long run's root requests, scored as a prefix cache would
        assert report["smoke"] is True and report["benchmark"] == "fold"
        runs = [*report["runs"].values(), report["ten_iterations_no_compaction"]]
        assert all(run["status"] == "completed" and 0 < run["cached_tokens"] < run["root_input_tokens"]
                   for run in runs), runs
        assert report["suite"]["cached_tokens"] >= 1024, report["suite"]
    else:
        assert report["smoke"] is True
        (figures,) = report["figures"].values()
        assert set(figures) == {"first_request_s", "total_s", "run_duration_s", "python_pass_s", "cli_help_s",
                                "import_litellm_s"}
        assert all(f["n"] == 1 for f in figures.values())


@pytest.mark.timeout(TIMEOUT_S + 60)
@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_smoke_run(script: str, smoke_runs: dict[str, Any]) -> None:
    code, report, stderr = _finish(smoke_runs[script])
    assert code == 0, f"{script} --smoke exited {code}:\n{stderr[-3000:]}"
    assert not _failures(report), _failures(report)
    _expected_keys(script, report)
