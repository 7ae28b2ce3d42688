"""The HTML viewer: one self-contained file, opened in a real headless browser (Debian's
chromium, driven by playwright): the iterations render, a sub-call expands on click, the
page asks the network for nothing; and `run --html` writes it, also for a cut-short run."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

from rlm_sandbox.testing import OpenAICompatibleServer
from tests.trace_runs import REPO, traces  # noqa: F401 - the session fixture

pytestmark = pytest.mark.docker
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "tests" / "artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("RLM_SANDBOX_")}
    full.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(REPO), **(env or {})})
    return subprocess.run([sys.executable, "-m", "rlm_sandbox", *map(str, args)], capture_output=True, text=True,
                          env=full, cwd=REPO, timeout=300, stdin=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """Headless chromium with a fresh profile and background networking off."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: the HTML viewer's tests need Debian's chromium; "
                    "`bash scripts/setup.sh` installs it (or `apt-get install -y chromium`)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=str(CHROMIUM), headless=True,
            args=CHROMIUM_ARGS, viewport={"width": 1280, "height": 900})
        yield context
        context.close()


def open_page(browser: Any, path: Path) -> tuple[Any, list[str]]:
    """The page, and every URL it requested (the document itself included)."""
    page = browser.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(path.resolve().as_uri())
    page.wait_for_load_state("load")
    return page, requested


def html_of(trace: Path, tmp_path: Path) -> Path:
    out = tmp_path / (trace.stem + ".html")
    done = cli("trace", "html", trace, "-o", out)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(out)
    return out


def test_the_file_is_self_contained(traces, tmp_path):
    text = html_of(traces.children, tmp_path).read_text()
    assert text.startswith("<!DOCTYPE html>")
    for forbidden in ("<script", "<link", "<img", "@import", "url(", "http://", "https://", "<iframe"):
        assert forbidden not in text, forbidden
    assert "default-src 'none'" in text  # and the browser would refuse any fetch anyway
    assert 'style="color: #' in text  # pygments, with its styles inlined


def test_in_a_browser_iterations_render_a_sub_call_expands_on_click_and_nothing_is_fetched(traces, tmp_path,
                                                                                          browser):
    path = html_of(traces.children, tmp_path)
    page, requested = open_page(browser, path)
    turns = page.locator("main > section.turn")  # the root run's (child runs' turns nest deeper)
    assert turns.count() == traces.children_result.iterations == 2
    assert page.locator(".timeline a").count() == 2
    assert "child run" in page.locator("details.child-run > summary").first.inner_text()
    assert page.locator("svg rect").count() == 2  # the chart: one bar per iteration
    sub_call = page.locator("details.sub-call").first
    body = sub_call.locator(".body")
    assert not body.is_visible()  # collapsed until clicked
    sub_call.locator(":scope > summary").click()
    assert body.is_visible()
    assert "sub answer to first?" in body.inner_text()
    child = page.locator("details.child-run").first
    child.locator(":scope > summary").click()
    assert child.locator("section.turn").first.is_visible()  # the child run, nested and expanded
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "html_viewer.png"), full_page=True)
    assert requested == [path.resolve().as_uri()], requested  # the document, and nothing else
    page.close()


def test_a_budget_stop_and_the_interrupted_run_say_so_in_the_browser(traces, tmp_path, browser):
    page, requested = open_page(browser, html_of(traces.budget, tmp_path))
    assert "budget exhausted: max_sub_calls (2 of 2)" in page.locator(".mark.budget").inner_text()
    assert "NOT a FINAL answer" in page.locator("dl.head").inner_text()
    assert page.locator(".timeline a.budget").count() == 1
    assert len(requested) == 1
    page.close()
    # the HTML `run --html` wrote when Ctrl-C stopped the run
    assert traces.interrupted_cli.returncode == 130
    assert f"the run so far is in {traces.interrupted_html}" in traces.interrupted_cli.stderr
    page, requested = open_page(browser, traces.interrupted_html)
    banner = page.locator("#partial")
    assert banner.is_visible() and "PARTIAL TRACE: the run was interrupted" in banner.inner_text()
    assert page.locator("main > section.turn").count() == 2  # the iteration that ran, and the one cut off
    assert "step one" in page.locator("main > section.turn").first.inner_text()
    assert len(requested) == 1
    page.close()


def test_run_html_writes_the_file_and_json_names_it(tmp_path, sandbox_image):
    context = tmp_path / "c.txt"
    context.write_text("red green blue green")
    out = tmp_path / "run.html"
    script = iter(["```repl\nwords = context.split()\nprint(len(words))\n```", "FINAL(4 words)"])
    with OpenAICompatibleServer(lambda messages: next(script)) as server:
        done = cli("run", "-q", "How many words?", "-f", context, "-m", "openai/x", "--html", out, "--json",
                   env={"RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["html"] == str(out)
    text = out.read_text()
    assert "How many words?" in text and "4 words" in text and "PARTIAL" not in text
    assert len(re.findall(r'<section class="turn"', text)) == 2


def test_run_html_into_a_missing_directory_fails_before_the_run(tmp_path):
    context = tmp_path / "c.txt"
    context.write_text("x")
    with OpenAICompatibleServer(lambda messages: "FINAL(never)") as server:
        done = cli("run", "-q", "x", "-f", context, "-m", "openai/x", "--html", tmp_path / "no" / "run.html",
                   env={"RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test"})
        assert not server.requests
    assert done.returncode == 2 and "does not exist" in done.stderr


@pytest.mark.parametrize("where, expected", [("missing/out.html", "does not exist"), (".", "is a directory")])
def test_trace_html_into_a_bad_place_exits_2(traces, tmp_path, where, expected):
    done = cli("trace", "html", traces.completed, "-o", tmp_path / where)
    assert done.returncode == 2 and expected in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr


def test_a_trace_cut_short_makes_a_partial_html_that_says_so(traces, tmp_path):
    lines = traces.children.read_text().splitlines()
    cut = tmp_path / "cut.jsonl"
    cut.write_text("\n".join(lines[: len(lines) // 2]) + "\n")
    out = tmp_path / "cut.html"
    done = cli("trace", "html", cut, "-o", out)
    assert done.returncode == 0, done.stderr
    assert "the trace is partial" in done.stderr
    text = out.read_text()
    assert '<div class="partial" id="partial">PARTIAL TRACE: the trace ends before the run finished' in text
    assert "the trace ends here, before the run finished" in text
