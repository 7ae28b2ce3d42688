#!/usr/bin/env python3
"""The HTML viewer on a big trace: file size, time to write it, time to open it in a browser.

    python benchmarks/bench_html.py [--iterations 81] [--batch 40] [--repeats 5] [--smoke]

The trace is a real run's (a real DockerSandbox, litellm's real path, scripted models):
each of ``--iterations`` root turns runs a cell that prints a few lines and calls
``llm_query_batched`` with ``--batch`` prompts, so the defaults make about 10,000 events.
Figures:

- ``events``, ``trace_bytes``, ``html_bytes``: the trace and the HTML file
  ``rlm-sandbox trace html`` writes from it.
- ``trace_html_s``: ``rlm-sandbox trace html`` as a subprocess, spawn to exit (reading the
  trace, building the outline, highlighting, writing).
- ``render_s``: the same in this process (read_events + write_html), without the start-up.
- In headless Debian chromium (the tests' switches, a fresh profile), per page load:
  ``goto_load_s`` (``page.goto`` until the load event, as playwright sees it),
  ``dom_content_loaded_ms`` and ``load_event_end_ms`` (the page's own navigation timing),
  ``first_contentful_paint_ms``; and ``expand_sub_call_s``, a click on the last sub-call's
  summary until its body is visible. Median, min and max of ``--repeats`` loads.

Prints one JSON object; progress on stderr. ``--smoke`` (what tests/test_benchmarks.py
runs) is 2 iterations of 3 sub-calls and one load: it checks the script works; its
figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import rlm_sandbox  # noqa: E402 - after the path setup above
from rlm_sandbox.events import read_events, write_jsonl  # noqa: E402 - after the path setup above
from rlm_sandbox.testing import Reply, ScriptedModel  # noqa: E402 - after the path setup above
from rlm_sandbox.view.html import write_html  # noqa: E402 - after the path setup above

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--no-first-run"]
perf = time.perf_counter


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def make_trace(path: Path, iterations: int, batch: int) -> dict[str, Any]:
    """A real run whose every turn makes ``batch`` sub-calls; its trajectory in ``path``."""
    def root_reply(messages: list[dict]) -> str:
        turn = sum(1 for m in messages if m["role"] == "assistant")
        if turn >= iterations:
            return "FINAL(done)"
        return (f"Turn {turn + 1}: asking the sub-model.\n```repl\nfor n in range(5):\n    print('row', n, {turn})\n"
                f"answers = llm_query_batched([f'question {{k}} of turn {turn}' for k in range({batch})])\n"
                "print(len(answers))\n```")

    root = ScriptedModel(responder=root_reply)
    sub = ScriptedModel(responder=lambda messages: Reply("an answer of a few words to " + messages[-1]["content"]))
    try:
        started = perf()
        result = rlm_sandbox.RLM(model=root.model, sub_model=sub.model, max_iterations=iterations + 1).run(
            "Ask every question", "a context")
        run_s = perf() - started
    finally:
        root.close()
        sub.close()
    if result.status != "completed":
        raise SystemExit(f"the run did not complete: {result.status} {result.error}")
    write_jsonl(path, result.trajectory)
    return {"events": len(result.trajectory), "run_s": round(run_s, 2), "trace_bytes": path.stat().st_size}


def stats(values: list[float], digits: int = 3) -> dict[str, Any]:
    return {"median": round(statistics.median(values), digits), "min": round(min(values), digits),
            "max": round(max(values), digits), "n": len(values)}


def browser_figures(html: Path, repeats: int, profile: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    figures: dict[str, list[float]] = {"goto_load_s": [], "dom_content_loaded_ms": [], "load_event_end_ms": [],
                                       "first_contentful_paint_ms": [], "expand_sub_call_s": []}
    requests: list[str] = []
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(str(profile), executable_path=CHROMIUM, headless=True,
                                                                args=CHROMIUM_ARGS, viewport={"width": 1280,
                                                                                              "height": 900})
        try:
            for _ in range(repeats):
                page = context.new_page()
                page.on("request", lambda request: requests.append(request.url))
                started = perf()
                page.goto(html.resolve().as_uri(), wait_until="load")
                figures["goto_load_s"].append(perf() - started)
                timing = page.evaluate("() => performance.getEntriesByType('navigation')[0].toJSON()")
                paint = page.evaluate("() => (performance.getEntriesByName('first-contentful-paint')[0] || {})"
                                      ".startTime || null")
                figures["dom_content_loaded_ms"].append(timing["domContentLoadedEventEnd"])
                figures["load_event_end_ms"].append(timing["loadEventEnd"])
                if paint is not None:
                    figures["first_contentful_paint_ms"].append(paint)
                sub_call = page.locator("details.sub-call").last
                started = perf()
                sub_call.locator(":scope > summary").click()
                sub_call.locator(":scope > .body").wait_for(state="visible")
                figures["expand_sub_call_s"].append(perf() - started)
                page.close()
        finally:
            context.close()
    out: dict[str, Any] = {name: stats(values, 1 if name.endswith("_ms") else 3)
                           for name, values in figures.items() if values}
    out["requests_other_than_the_file"] = len([url for url in requests if url != html.resolve().as_uri()])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=81)
    parser.add_argument("--batch", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--smoke", action="store_true", help="2 iterations of 3 sub-calls, one load")
    args = parser.parse_args(argv)
    if args.smoke:
        args.iterations, args.batch, args.repeats = 2, 3, 1
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    out: dict[str, Any] = {"smoke": args.smoke, "iterations": args.iterations, "batch": args.batch}
    with tempfile.TemporaryDirectory() as tmp:
        trace, html = Path(tmp) / "trace.jsonl", Path(tmp) / "trace.html"
        say(f"running {args.iterations} turns of {args.batch} sub-calls")
        out.update(make_trace(trace, args.iterations, args.batch))
        say(f"{out['events']:,} events; rendering")
        started = perf()
        done = subprocess.run([sys.executable, "-m", "rlm_sandbox", "trace", "html", str(trace), "-o", str(html)],
                              capture_output=True, text=True, cwd=tmp,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        out["trace_html_s"] = round(perf() - started, 3)
        if done.returncode != 0:
            out["error"] = f"trace html exited {done.returncode}: {done.stderr[-500:]}"
            print(json.dumps(out, indent=1))
            return 1
        out["html_bytes"] = html.stat().st_size
        started = perf()
        loaded = read_events(trace)
        write_html(loaded.events, Path(tmp) / "again.html", loaded.problems)
        out["render_s"] = round(perf() - started, 3)
        say("opening it in headless chromium")
        out["browser"] = browser_figures(html, args.repeats, Path(tmp) / "profile")
    print(json.dumps(out, indent=1))
    return 0 if out["browser"]["requests_other_than_the_file"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
