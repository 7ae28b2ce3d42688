"""Time and noise (issue 7, items 10 and 11), in real subprocesses: what imports litellm, when
a run's clock starts, and that mixing sync and async use prints nothing nobody asked for."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlm_sandbox.testing import OpenAICompatibleServer, Reply

REPO = Path(__file__).resolve().parent.parent


def python(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """A fresh interpreter on this checkout, with litellm's own cost-map variable unset."""
    full_env = {k: v for k, v in os.environ.items()
                if k != "LITELLM_LOCAL_MODEL_COST_MAP" and not k.endswith("_API_KEY")}
    full_env.update({"PYTHONPATH": str(REPO), **(env or {})})
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, env=full_env, timeout=timeout,
                          cwd=REPO)


# -- what imports litellm ---------------------------------------------------------------------

@pytest.mark.parametrize("command", [["--help"], ["run", "--help"], ["doctor"], ["gc"], ["image", "show"],
                                     ["image", "--help"], ["demo", "--help"]])
def test_commands_that_call_no_model_never_import_litellm(command, sandbox_image):
    done = python("-X", "importtime", "-m", "rlm_sandbox", *command)
    imported = [line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines() if line.startswith("import time:")]
    assert imported, done.stderr[-2000:]  # -X importtime did report
    assert not [name for name in imported if name.split(".")[0] == "litellm"]


def test_importing_the_package_and_its_public_names_never_imports_litellm():
    done = python("-c", "import os, sys, rlm_sandbox\n"
                        "from rlm_sandbox import RLM, Settings, Budget, RLMResult, run, arun, DockerSandbox\n"
                        "import rlm_sandbox.testing, rlm_sandbox.cli\n"
                        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'litellm'))\n"
                        "print(os.environ.get('LITELLM_LOCAL_MODEL_COST_MAP'))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "None"]  # and no import-time change to the environment


# -- the run's clock -----------------------------------------------------------------------------

RUN_WITH_A_WALL_BUDGET = """
import importlib.abc, importlib.util, json, sys, time
from rlm_sandbox import RLM
order, took = [], {}

class TimedLitellm(importlib.abc.MetaPathFinder):
    # says when litellm's import ended, and how long it took
    def find_spec(self, name, path, target=None):
        if name != "litellm":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        real = spec.loader.exec_module
        def exec_module(module):
            started = time.perf_counter()
            real(module)
            took["import_s"] = time.perf_counter() - started
            order.append("litellm imported")
        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, TimedLitellm())
rlm = RLM(model="openai/test-model", api_base=sys.argv[1], api_key="sk-test", sandbox="local",
          max_wall_time_s=float(sys.argv[2]), on_event=lambda event: order.append(event.event))
imported_before = "litellm" in sys.modules
started = time.perf_counter()
result = rlm.run("q", "ctx")
print(json.dumps({"status": result.status, "error": result.error, "run_s": result.duration_s,
                  "call_s": time.perf_counter() - started, "imported_before": imported_before,
                  "imported_after": "litellm" in sys.modules, "order": order[:2], **took}))
"""


def test_importing_litellm_is_not_charged_to_the_run() -> None:
    """A run with a wall-time budget used to time out before its first model reply when the
    budget was shorter than litellm's import (it was charged the import); now the clock starts
    when the run starts, after the import. Checked by its cause, not by racing a budget against
    an import timed in another process: litellm was imported before the run began, and the run's
    duration leaves out the import that run() spent."""
    with OpenAICompatibleServer(lambda messages: Reply("FINAL(ok)", input_tokens=5, output_tokens=2)) as server:
        done = python("-W", "error::RuntimeWarning", "-c", RUN_WITH_A_WALL_BUDGET, server.url, "600")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["imported_before"], report["imported_after"]) == (False, True)
    assert report["order"] == ["litellm imported", "run_start"], report  # the cause: imported, then the clock
    assert report["status"] == "completed", report
    # run() took the import plus the run; the run's own clock did not count the import (0.01: rounding)
    assert report["run_s"] < report["call_s"] - report["import_s"] + 0.01, report
    assert "never awaited" not in done.stderr


# -- noise -----------------------------------------------------------------------------------------

SYNC_AND_ASYNC_MIXED = """
import asyncio
from rlm_sandbox import RLM
from rlm_sandbox.models import load_litellm
from rlm_sandbox.testing import ScriptedModel

litellm = load_litellm()
models = [ScriptedModel([litellm.RateLimitError("slow down", llm_provider="scripted", model="m"),
                         "```repl\\nprint(llm_query('hi'))\\n```", "FINAL(done)"]) for _ in range(5)]
sub = ScriptedModel(responder=lambda messages: "sub answer")
make = lambda i: RLM(model=models[i].model, sub_model=sub.model)

async def async_session(i):
    async with make(i).session("ctx") as session:
        return (await session.aask("q")).answer

answers = [make(0).run("q", "ctx").answer,                 # sync, on the background loop
           asyncio.run(make(1).arun("q", "ctx")).answer,   # then async, on a loop of its own
           asyncio.run(async_session(2))]                  # then an async session after a sync run
with make(3).session("ctx") as session:                    # a sync session after async ones
    answers.append(session.ask("q").answer)
answers.append(asyncio.run(make(4).arun("q", "ctx")).answer)
print(answers)
"""


def test_mixing_sync_and_async_runs_prints_nothing_under_w_error(sandbox_image):
    """No "Task was destroyed but it is pending" (litellm's logging worker), no tenacity
    DeprecationWarning, no network fetch of litellm's price list: stderr stays empty."""
    done = python("-W", "error", "-c", SYNC_AND_ASYNC_MIXED)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == str(["done"] * 5)
    assert done.stderr == ""


def test_a_cli_run_under_w_error_prints_only_its_summary(tmp_path, sandbox_image):
    context = tmp_path / "c.txt"
    context.write_text("red green blue")
    with OpenAICompatibleServer(lambda messages: Reply("FINAL(blue)", input_tokens=5, output_tokens=2)) as server:
        done = python("-W", "error", "-m", "rlm_sandbox", "run", "-q", "Last word?", "-f", str(context),
                      "-m", "openai/test-model", env={"RLM_SANDBOX_API_BASE": server.url,
                                                      "RLM_SANDBOX_API_KEY": "sk-test"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "blue"
    summary = done.stderr.strip().splitlines()
    assert len(summary) == 1 and summary[0].startswith("status=completed"), done.stderr
