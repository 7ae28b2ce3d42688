"""Text a model wrote never drives the terminal (issue 17, item 6): the same hostile text (a
title-setting OSC, clear screen, an OSC 8 hyperlink, a C1 CSI, a right-to-left override,
rich markup) as query, context, model reply, cell output and sub-call answer, through every
terminal view: ``run -v`` piped, the live display with its event log on a real
pseudo-terminal (read back with the ``pyte`` VT emulator), ``trace show`` on both, and the
answer on stdout (byte-exact when piped, made visible on a terminal)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pyte
import pytest
from rich.console import Console

from rlm_sandbox.events import types as ev
from rlm_sandbox.events.printer import VerbosePrinter
from rlm_sandbox.testing import OpenAICompatibleServer
from rlm_sandbox.view.live import LiveDisplay
from rlm_sandbox.view.tree import render_trace
from tests.test_live import COLUMNS, ROWS, in_pty

REPO = Path(__file__).resolve().parent.parent
HOSTILE = ("\x1b]0;PWNED\x07\x1b[2J\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\ \x9b31m "
           "\u202eevil\u202c [bold]markup[/bold] end")
#: What must never reach a terminal raw (rich's own colour codes, ESC [ ... m, may).
RAW = ("\x1b]", "\x07", "\x9b", "\u202e", "\x1b[2J")
#: How the hostile text shows instead.
SHOWN = ("\\x1b]0;PWNED\\x07", "\\x1b[2J", "\\x9b31m", "\\u202eevil", "[bold]markup[/bold]")


def assert_safe(text: str, *, shown: tuple[str, ...] = SHOWN) -> None:
    leaked = [marker for marker in RAW if marker in text]
    assert not leaked, f"raw {leaked!r} reached the terminal:\n{text!r}"
    missing = [part for part in shown if part not in text]
    assert not missing, f"{missing} not shown:\n{text}"


def event(kind: type, **fields: Any) -> Any:
    base = {"run_id": "r1", "depth": 0, "seq": 0, "ts": datetime.now(timezone.utc), "t": 0.5}
    return kind(**{**base, **fields})


def hostile_events() -> list[Any]:
    return [
        event(ev.RunStart, query=HOSTILE, model="openai/x", sub_model="openai/x", context_type="str"),
        event(ev.Iteration, seq=1, iteration=1, model="openai/x"),
        event(ev.ModelRequest, seq=2, call_id="c1", role="root", model="openai/x", purpose="step", iteration=1,
              messages=[{"role": "user", "content": HOSTILE}]),
        event(ev.ModelReply, seq=3, call_id="c1", role="root", model="openai/x", outcome="ok",
              text=HOSTILE + "\n```repl\nprint(context)\n```"),
        event(ev.ModelRequest, seq=4, call_id="s1", role="sub", model="openai/x", purpose="sub_call", iteration=1,
              messages=[{"role": "user", "content": "Echo: " + HOSTILE}]),
        event(ev.ModelReply, seq=5, call_id="s1", role="sub", model="openai/x", outcome="ok", text=HOSTILE),
        event(ev.SubCall, seq=6, function="llm_query", call_id="s1", model="openai/x", iteration=1, cell=0,
              outcome="ok"),
        event(ev.Cell, seq=7, iteration=1, index=0, code=f"print({HOSTILE!r})", shown="", stdout=HOSTILE,
              stdout_chars=len(HOSTILE), error=HOSTILE),
        event(ev.Final, seq=8, status="completed", answer=HOSTILE, answer_from="final", error=HOSTILE),
    ]


def terminal(width: int = 400) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=width, color_system="truecolor"), out


# -- each view, fed the events directly --------------------------------------------------------

def test_the_verbose_printer_shows_every_hostile_field_as_escapes():
    printer = VerbosePrinter()
    text = "".join(printer.format(e) for e in hostile_events())
    assert_safe(text)
    assert text.count("\\x1b]0;PWNED") >= 5  # query, reply, cell output and error, sub-call, final


def test_the_live_display_draws_hostile_queries_and_its_log_as_escapes():
    console, out = terminal()
    display = LiveDisplay(console, log=True)
    child = event(ev.RunStart, run_id="r2", parent_run_id="r1", depth=1, query=HOSTILE, model="openai/x",
                  sub_model="openai/x", context_type="str")
    for e in [*hostile_events()[:2], child]:
        display(e)
    console.print(display.render())
    assert_safe(out.getvalue(), shown=("\\x1b]0;PWNED",))  # the child's query line is clipped to 40 characters
    assert "[bold]markup[/bold]" in out.getvalue()  # in the log's query line: literal, not markup


def test_trace_show_renders_hostile_events_as_escapes_and_markup_literally():
    console, out = terminal()
    console.print(render_trace(hostile_events()))
    assert_safe(out.getvalue())


def test_json_on_a_terminal_escapes_what_a_terminal_would_obey_and_stays_the_same_json():
    from rlm_sandbox.cli.result_json import terminal_json

    text = json.dumps({"answer": HOSTILE + " é 文"}, ensure_ascii=False)
    shown = terminal_json(text)
    assert json.loads(shown) == json.loads(text)
    assert not any(marker in shown for marker in RAW)
    assert "\\u202e" in shown and "é 文" in shown  # letters stay letters


# -- the real command line ---------------------------------------------------------------------

def hostile_model(messages: list[dict]) -> str:
    if messages[-1]["content"].startswith("Echo:"):
        return HOSTILE  # the sub-call's answer
    if not any(m["role"] == "assistant" for m in messages):
        return HOSTILE + "\n```repl\nprint(context)\nprint(llm_query('Echo: ' + context[:30]))\n```"
    return "```repl\nFINAL(context)\n```"


def _env(server: OpenAICompatibleServer) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("RLM_SANDBOX_")}
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(REPO), "TERM": "xterm-256color",
                "RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test", "COLUMNS": str(COLUMNS)})
    env.pop("NO_COLOR", None)
    return env


def screen_of(output: str) -> pyte.Screen:
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.Stream(screen).feed(output)
    return screen


@pytest.mark.docker
def test_hostile_text_through_run_v_piped_and_on_a_terminal_and_trace_show(tmp_path, sandbox_image):
    context = tmp_path / "hostile.txt"
    context.write_text(HOSTILE, encoding="utf-8")
    trace = tmp_path / "t.jsonl"
    args = ["run", "-q", HOSTILE, "-f", str(context), "-m", "openai/x", "-v"]
    with OpenAICompatibleServer(hostile_model) as server:
        piped = subprocess.run([sys.executable, "-m", "rlm_sandbox", *args, "--trace", str(trace)],
                               capture_output=True, text=True, env=_env(server), cwd=REPO, timeout=300)
        code, output = in_pty(args, _env(server))
    # Piped: the answer is byte-exact for scripts; stderr (-v) shows every hostile field as escapes.
    assert piped.returncode == 0, piped.stderr
    final = [e for e in map(json.loads, trace.read_text().splitlines()) if e.get("event") == "final"][-1]
    assert "\x1b]0;PWNED\x07" in final["answer"]  # the run's answer holds the raw sequences ...
    assert piped.stdout == final["answer"] + "\n"  # ... and piped stdout has it byte for byte
    assert_safe(piped.stderr)
    # On a terminal: the live display, its -v log and the answer leave the title and screen alone.
    assert code == 0, output
    assert_safe(output)
    screen = screen_of(output)
    assert screen.title == "", screen.title
    lines = [line.rstrip() for line in screen.display if line.strip()]
    assert any(line.startswith("[rlm ") for line in lines), lines  # nothing cleared the log
    assert any("\\x1b]0;PWNED\\x07" in line for line in lines), lines
    assert lines[-1].startswith("status=completed"), lines
    # trace show, piped and on a terminal.
    shown = subprocess.run([sys.executable, "-m", "rlm_sandbox", "trace", "show", str(trace), "--full"],
                           capture_output=True, text=True, env=_env(server), cwd=REPO, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert_safe(shown.stdout)
    code, output = in_pty(["trace", "show", str(trace), "--full"], _env(server))
    assert code == 0, output
    assert_safe(output)
    assert screen_of(output).title == ""
