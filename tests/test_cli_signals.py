"""The command line says what happened (issue 17, items 9, 10, 13 and 14): exit codes, the
``--json`` result, ``doctor``'s view of ``.env`` and base URLs, and the small messages each
seen wrong once. Real subprocesses of the CLI, a real model server on 127.0.0.1 where a
model is needed, real Docker only where a run needs a sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from rlm_sandbox.core.budget import Budget, Ledger
from rlm_sandbox.errors import BudgetExceeded, UnrecordedRequest
from rlm_sandbox.events import types as ev
from rlm_sandbox.events.printer import VerbosePrinter
from rlm_sandbox.models import LLMClient
from rlm_sandbox.models.replay import RecordingClient, ReplayClient
from rlm_sandbox.testing import OpenAICompatibleServer, Reply, ScriptedModel

REPO = Path(__file__).resolve().parent.parent


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("RLM_SANDBOX_")
           and not k.endswith(("_API_BASE", "_BASE_URL"))}
    env.update({"PYTHONPATH": str(REPO), "NO_COLOR": "1", "LITELLM_LOCAL_MODEL_COST_MAP": "True", **extra})
    return env


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO, stdin: str | None = None,
        timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlm_sandbox", *map(str, args)], capture_output=True, text=True,
                          env=env or _env(), cwd=cwd, input=stdin, timeout=timeout)


def closed_url() -> str:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def event(kind: type, **fields: Any) -> Any:
    base = {"run_id": "r1", "depth": 0, "seq": 0, "ts": datetime.now(timezone.utc), "t": 0.5}
    return kind(**{**base, **fields})


def write_trace(path: Path, iterations: int) -> Path:
    events = [event(ev.RunStart, query="q?", model="openai/x", sub_model="openai/x", context_type="str")]
    for number in range(1, iterations + 1):
        events.append(event(ev.Iteration, seq=number, iteration=number, model="openai/x"))
    events.append(event(ev.Final, seq=iterations + 1, status="completed", answer="42", answer_from="final"))
    path.write_text("".join(e.model_dump_json(by_alias=True) + "\n" for e in events))
    return path


# -- item 9: --json and the exit table -------------------------------------------------------

@pytest.mark.docker
def test_json_usage_has_attempts_and_failed_calls_and_count_budgets_are_ints_never_past_their_limit(
        tmp_path, sandbox_image):
    class RateLimited(Exception):
        status_code = 429

    calls: list[int] = []

    def reply(messages: list[dict]) -> Any:
        calls.append(1)
        if len(calls) == 1:
            return Reply(error=RateLimited("429 slow down"))
        return Reply("```repl\nprint('working')\n```", input_tokens=10, output_tokens=2)

    (tmp_path / "c.txt").write_text("red green blue")
    with OpenAICompatibleServer(reply) as server:
        done = cli("run", "-q", "What?", "-f", tmp_path / "c.txt", "-m", "openai/x", "--json", "--max-iterations", "1",
                   "--set", "max_retries=2", env=_env(RLM_SANDBOX_API_BASE=server.url, RLM_SANDBOX_API_KEY="sk-test"))
    assert done.returncode == 3, done.stderr
    report = json.loads(done.stdout)
    assert report["status"] == "max_iterations"
    root = next(use for use in report["usage"] if use["role"] == "root")
    assert root["attempts"] == root["calls"] + 1 and root["failed_calls"] == 0  # the 429 was billed as an attempt
    iterations = report["budget"]["iterations"]
    assert iterations == {"used": 1, "limit": 1, "reached": True, "note": None}  # not "used 2.0, limit 1"
    assert isinstance(report["budget"]["total_tokens"]["used"], int)
    assert report["budget"]["total_tokens"]["reached"] is False


def test_help_and_readme_list_stalled_among_the_statuses():
    done = cli("run", "--help")
    assert done.returncode == 0
    assert "stalled" in done.stdout and "budget that cannot be enforced" in " ".join(done.stdout.split())
    readme = (REPO / "README.md").read_text()
    section = readme.split("### `--json`", 1)[1].split("\n##", 1)[0]
    assert "`stalled`" in section
    from rlm_sandbox.cli.result_json import ResultJSON

    assert "stalled" in (ResultJSON.model_fields["status"].description or "")


# -- item 10: exit codes ----------------------------------------------------------------------

def test_an_unenforceable_budget_is_a_bad_setting_exit_2(tmp_path):
    (tmp_path / "c.txt").write_text("red")
    with OpenAICompatibleServer(lambda messages: "FINAL(never)") as server:
        done = cli("run", "-q", "What?", "-f", tmp_path / "c.txt", "-m", "openai/test-model",
                   "--set", "max_cost_usd=0.5",
                   env=_env(RLM_SANDBOX_API_BASE=server.url, RLM_SANDBOX_API_KEY="sk-test"))
        assert server.requests == []
    assert done.returncode == 2, done.stderr
    assert "max_cost_usd=0.5 cannot be enforced" in done.stderr and done.stdout == ""


def test_trace_show_of_an_iteration_the_trace_lacks_exits_2_naming_those_it_has(tmp_path):
    trace = write_trace(tmp_path / "t.jsonl", 3)
    done = cli("trace", "show", trace, "--iteration", "9")
    assert done.returncode == 2, done.stdout
    assert "--iteration 9: the trace has no iteration 9; it has iterations 1-3" in done.stderr
    assert cli("trace", "show", trace, "--iteration", "2").returncode == 0


# -- item 13: doctor ---------------------------------------------------------------------------

def _doctor(cwd: Path, *args: str, **env: str) -> tuple[subprocess.CompletedProcess, dict[str, dict]]:
    # Docker is pointed nowhere: these checks are about keys and base URLs, not the sandbox.
    done = cli("doctor", "--json", *args, env=_env(DOCKER_HOST=f"unix://{cwd}/no-docker.sock", **env), cwd=cwd,
               timeout=180)
    return done, {check["name"]: check for check in json.loads(done.stdout)["checks"]}


def test_doctor_model_uses_the_key_and_provider_base_in_dot_env_as_run_does(tmp_path):
    with OpenAICompatibleServer(lambda messages: "the code word is not here") as server:
        (tmp_path / ".env").write_text(f"OPENAI_API_KEY=sk-dotenv-secret-123456\nOPENAI_API_BASE={server.url}\n")
        done, checks = _doctor(tmp_path, "--model", "openai/x")
        assert server.requests, "doctor --model made no call"
    assert checks["provider_keys"]["status"] == "ok" and "OPENAI_API_KEY (.env)" in checks["provider_keys"]["detail"]
    assert checks["openai_api_base"]["status"] == "ok"
    assert f"OPENAI_API_BASE (from the .env) {server.url}: answers" in checks["openai_api_base"]["detail"]
    assert checks["system_message"]["status"] != "fail", checks["system_message"]
    assert "sk-dotenv-secret-123456" not in done.stdout + done.stderr


def test_doctor_names_an_unreachable_provider_base_url_and_never_a_key_in_it(tmp_path):
    url = closed_url()
    with_key = url.replace("http://", "http://user:sk-in-url-secret-987654@")
    done, checks = _doctor(tmp_path, "--model", "openai/x", OPENAI_BASE_URL=with_key, OPENAI_API_KEY="sk-x")
    base = checks["openai_base_url"]
    assert base["status"] == "fail"
    shown = url.replace("http://", "http://***@")
    assert f"OPENAI_BASE_URL (from the environment) {shown}: unreachable" in base["detail"]
    assert base["fix"] == f"start the server that should answer at {shown}, or unset OPENAI_BASE_URL"
    assert checks["system_message"]["status"] == "fail"
    assert f"model openai/x at {shown} (OPENAI_BASE_URL)" in checks["system_message"]["detail"]
    assert "sk-in-url-secret-987654" not in done.stdout + done.stderr


# -- item 14: the small ones -------------------------------------------------------------------

def test_verbose_puts_a_separator_between_the_run_header_and_the_query():
    start = event(ev.RunStart, query="What is it?", model="openai/x", sub_model="openai/x", context_type="str",
                  context_length=14)
    line = VerbosePrinter().format(start)
    assert "context str of 14; query: What is it?" in line, line


@pytest.mark.docker
def test_no_answer_prints_nothing_on_stdout(tmp_path, sandbox_image):
    (tmp_path / "c.txt").write_text("red")
    done = cli("run", "-q", "What?", "-f", tmp_path / "c.txt", "-m", "openai/x", "--set", "max_retries=0",
               env=_env(RLM_SANDBOX_API_BASE=closed_url(), RLM_SANDBOX_API_KEY="sk-test"))
    assert done.returncode == 4, done.stderr
    assert done.stdout == ""  # no answer: not even an empty line
    assert "NO ANSWER" in done.stderr


def test_record_follows_the_rule_of_trace_and_html_its_parent_must_exist(tmp_path):
    (tmp_path / "c.txt").write_text("red")
    with OpenAICompatibleServer(lambda messages: "FINAL(never)") as server:
        env = _env(RLM_SANDBOX_API_BASE=server.url, RLM_SANDBOX_API_KEY="sk-test")
        for flag, where in (("--record", tmp_path / "no" / "tape"), ("--trace", tmp_path / "no" / "t.jsonl"),
                            ("--html", tmp_path / "no" / "r.html")):
            done = cli("run", "-q", "What?", "-f", tmp_path / "c.txt", "-m", "openai/x", flag, where, env=env)
            assert done.returncode == 2, (flag, done.stderr)
            assert f"{flag} {where}: the directory {str(where.parent)!r} does not exist; make it first" \
                in done.stderr, done.stderr
        assert not server.requests
    assert not (tmp_path / "no").exists()
    (tmp_path / "file").write_text("")
    done = cli("run", "-q", "What?", "-f", tmp_path / "c.txt", "-m", "openai/x", "--record", tmp_path / "file")
    assert done.returncode == 2 and "is a file; give a directory" in done.stderr


@pytest.mark.docker
def test_demo_quiet_prints_the_answer_and_the_verdict_only(sandbox_image, tmp_path):
    done = cli("demo", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip()  # the answer
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("expected $") and "correct (SCRIPTED demo model)" in lines[0], lines


def test_a_replay_miss_never_calls_different_requests_100_percent_alike(tmp_path):
    long_text = "word " * 2000
    with ScriptedModel(["one"]) as model:
        recorder = RecordingClient(LLMClient(backoff_initial_s=0.01), tmp_path / "c.jsonl")
        asyncio.run(recorder.acomplete(model.model, [{"role": "user", "content": long_text + "A"}], max_tokens=5))
    replay = ReplayClient(tmp_path / "c.jsonl")
    with pytest.raises(UnrecordedRequest) as caught:
        asyncio.run(replay.acomplete(model.model, [{"role": "user", "content": long_text + "B"}], max_tokens=5))
    message = str(caught.value)
    assert "100% alike" not in message and "99% alike" in message, message


def test_a_token_refusal_a_smaller_max_tokens_would_fix_says_so():
    ledger = Ledger(Budget(max_total_tokens=1000))
    with pytest.raises(BudgetExceeded) as caught:
        ledger.reserve("root model call", 500, 4096, None)
    assert "max_tokens below 500 would let it through" in str(caught.value)
    with pytest.raises(BudgetExceeded) as sub:
        ledger.reserve("llm_query", 300, 4096, None)
    assert "sub_max_tokens below 700" in str(sub.value)
    with pytest.raises(BudgetExceeded) as hopeless:  # the prompt alone does not fit: no such advice
        ledger.reserve("llm_query", 1200, 10, None)
    assert "would let it through" not in str(hopeless.value)


def test_run_with_the_scripted_oracle_says_it_is_only_for_eval(tmp_path):
    (tmp_path / "c.txt").write_text("red")
    done = cli("run", "-q", "What?", "-f", tmp_path / "c.txt", "-m", "scripted/oracle")
    assert done.returncode == 2
    assert "--model scripted/oracle: the scripted oracle is only for evaluation" in done.stderr
    assert "provider prefix" not in done.stderr


def test_trace_html_defaults_its_output_to_the_trace_with_an_html_suffix(tmp_path):
    trace = write_trace(tmp_path / "run.jsonl", 2)
    done = cli("trace", "html", trace)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(tmp_path / "run.html") and (tmp_path / "run.html").is_file()
