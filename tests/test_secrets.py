"""No secret's value ever leaves the process: not in an error, a traceback, the trajectory,
``--json``, ``-v``, a log line, ``doctor`` or ``settings``; and not into a container.

Recognisable fake keys are set in the environment AND in a ``.env`` in the working
directory of the real ``rlm-sandbox`` subprocess. An OpenAI-compatible server on
127.0.0.1 echoes the ``Authorization`` header it receives back in its error messages (as a
careless proxy would), so the failure paths really carry the key; each test checks that
the server did receive it (the attack is real) and that no output or file holds it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rlm_sandbox.testing import OpenAICompatibleServer, Reply

pytestmark = pytest.mark.docker
REPO = Path(__file__).resolve().parent.parent


def _fake(label: str) -> str:
    return f"sk-{label}FAKE{secrets.token_hex(10)}"


#: Exported in the CLI's environment.
EXPORTED = {"OPENAI_API_KEY": _fake("exported"), "HF_TOKEN": _fake("hftoken")}
#: Written to ./.env only.
IN_DOTENV = {"ANTHROPIC_API_KEY": _fake("dotenv"), "RLM_SANDBOX_API_KEY": _fake("setting")}
ALL_KEYS = {**EXPORTED, **IN_DOTENV}
#: How the key of the api_key setting looks once masked.
MASKED_SETTING = re.compile(r"\[secret (?:api_key|RLM_SANDBOX_API_KEY)\]")


class Echo(Exception):
    """What the server answers with: its message becomes the HTTP error's text."""

    def __init__(self, message: str, status_code: int) -> None:
        super().__init__(message)
        self.status_code = status_code


class Workdir:
    """A working directory with a .env, and every output of the CLI runs made in it."""

    def __init__(self, path: Path, dotenv: dict[str, str]) -> None:
        self.path = path
        self.outputs: list[str] = []
        (path / ".env").write_text("".join(f"{name}={value}\n" for name, value in dotenv.items())
                                   + "RLM_SANDBOX_MODLE=typo-of-model\n")
        (path / "context.txt").write_text("alpha beta gamma")

    def cli(self, *args: str, env: dict[str, str] | None = None,
            exported: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        full_env = {k: v for k, v in os.environ.items()
                    if not k.endswith(("_API_KEY", "_TOKEN")) and not k.startswith("RLM_SANDBOX_")}
        full_env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(REPO),
                         **(EXPORTED if exported is None else exported), **(env or {})})
        done = subprocess.run([sys.executable, "-m", "rlm_sandbox", *args], capture_output=True, text=True,
                              env=full_env, timeout=300, cwd=self.path)
        self.outputs += [done.stdout, done.stderr]
        return done

    def python(self, code: str) -> subprocess.CompletedProcess:
        """The Python API in a subprocess, in this directory, with the keys exported."""
        full_env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        full_env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(REPO), **EXPORTED})
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full_env,
                              timeout=300, cwd=self.path)
        self.outputs += [done.stdout, done.stderr]
        return done

    def assert_nothing_leaked(self, keys: dict[str, str] = ALL_KEYS) -> None:
        """No key value in any output, nor in any file written here (the .env aside)."""
        texts = {f"output {i}": text for i, text in enumerate(self.outputs)}
        texts.update({str(file): file.read_text(errors="replace") for file in self.path.rglob("*")
                      if file.is_file() and file.name != ".env"})
        leaks = [(name, where) for name, value in keys.items() for where, text in texts.items() if value in text]
        assert not leaks, f"secret values leaked: {leaks}"


@pytest.fixture
def workdir(tmp_path: Path) -> Workdir:
    return Workdir(tmp_path, IN_DOTENV)


def _authorization(server: OpenAICompatibleServer) -> str:
    headers = {k.lower(): v for k, v in server.requests[-1].headers.items()}
    return headers.get("authorization", "")


def _is_root_call(messages: list[dict[str, Any]]) -> bool:
    return bool(messages) and messages[0]["role"] == "system"


def test_provider_keys_in_dotenv_no_longer_break_a_run_and_its_outputs_hold_no_secret(workdir, sandbox_image):
    """The .env of the original RLM project (provider keys beside our settings) runs, and the
    -v progress, --json result and --trace file of a run hold no key."""
    script = iter(["```repl\nprint(context.split()[1])\n```", "FINAL(beta)"])
    with OpenAICompatibleServer(lambda messages: Reply(next(script), input_tokens=5, output_tokens=1)) as server:
        done = workdir.cli("run", "-q", "Second word?", "-f", "context.txt", "-m", "openai/x", "-v", "--json",
                           "--trace", "trace.jsonl", env={"RLM_SANDBOX_API_BASE": server.url})
        assert _authorization(server) == f"Bearer {IN_DOTENV['RLM_SANDBOX_API_KEY']}"  # the .env setting is used
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["answer"] == "beta"
    assert "Extra inputs" not in done.stderr and "RLM_SANDBOX_MODLE" in done.stderr  # the typo, named once
    assert done.stderr.count("RLM_SANDBOX_MODLE") == 1 and "typo-of-model" not in done.stderr
    assert (workdir.path / "trace.jsonl").read_text().count("\n") >= 4
    workdir.assert_nothing_leaked()


@pytest.mark.parametrize("status", [401, 500])
def test_auth_and_provider_errors_that_echo_the_key_are_masked(workdir, status, sandbox_image):
    def responder(messages: list[dict[str, Any]]) -> Reply:
        return Reply(error=Echo(f"Incorrect API key provided: {_authorization(server)}", status))

    with OpenAICompatibleServer(responder) as server:
        done = workdir.cli("run", "-q", "x", "-f", "context.txt", "-m", "openai/x", "-v", "--json",
                           "--trace", "trace.jsonl",
                           env={"RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_MAX_RETRIES": "0"})
        assert IN_DOTENV["RLM_SANDBOX_API_KEY"] in _authorization(server)  # so the echo carries it
    assert done.returncode == 4, done.stderr
    assert MASKED_SETTING.search(done.stderr)  # masked, not dropped: the user sees which key
    assert json.loads(done.stdout)["status"] == "error"
    events = [json.loads(line) for line in (workdir.path / "trace.jsonl").read_text().splitlines()]
    assert events[-1]["event"] == "final" and MASKED_SETTING.search(events[-1]["error"])
    workdir.assert_nothing_leaked()


def test_a_failed_sub_call_echoing_the_key_reaches_neither_the_model_nor_the_answer(workdir, sandbox_image):
    """The sub-call's error goes into the cell, from there to the root model (maybe another
    provider) and, here, into the answer: the key must be masked before all of that."""
    steps = iter(["```repl\ntry:\n    llm_query('hello')\nexcept LLMError as exc:\n    err = str(exc)\n"
                  "print(err)\n```", "FINAL_VAR(err)"])

    def responder(messages: list[dict[str, Any]]) -> Reply | str:
        if _is_root_call(messages):
            return next(steps)
        return Reply(error=Echo(f"bad key {_authorization(server)}", 400))

    with OpenAICompatibleServer(responder) as server:
        done = workdir.cli("run", "-q", "x", "-f", "context.txt", "-m", "openai/x", "-v", "--trace", "t.jsonl",
                           env={"RLM_SANDBOX_API_BASE": server.url})
        seen_by_models = json.dumps([request.body for request in server.requests])
    assert done.returncode == 0, done.stderr
    assert re.search(r"bad key Bearer " + MASKED_SETTING.pattern, done.stdout)
    assert not [name for name, value in ALL_KEYS.items() if value in seen_by_models]
    workdir.assert_nothing_leaked()


@pytest.mark.parametrize("sandbox", ["docker", "local"])
def test_the_sandbox_environment_holds_no_key(workdir, sandbox, sandbox_image):
    code = "```repl\nimport os\nprint(sorted(os.environ.items()))\n```"
    steps = iter([code, "FINAL(done)"])
    with OpenAICompatibleServer(lambda messages: next(steps)) as server:
        done = workdir.cli("run", "-q", "x", "-f", "context.txt", "-m", "openai/x", "--sandbox", sandbox,
                           env={"RLM_SANDBOX_API_BASE": server.url})
        observation = server.requests[1].messages[-1]["content"]
    assert done.returncode == 0, done.stderr
    assert "PATH" in observation  # the cell did print its environment
    assert not [name for name in ALL_KEYS if name in observation]
    assert not [name for name, value in ALL_KEYS.items() if value in observation]
    workdir.assert_nothing_leaked()


def test_bad_settings_never_print_a_secret(workdir):
    key = EXPORTED["OPENAI_API_KEY"]
    typed = workdir.cli("run", "-q", "x", "-f", "context.txt", "--set", f"max_cost_usd={key}")
    assert typed.returncode == 2 and "--set max_cost_usd=[secret OPENAI_API_KEY]" in typed.stderr
    from_env = workdir.cli("run", "-q", "x", "-f", "context.txt", env={"RLM_SANDBOX_TEMPERATURE": key})
    assert from_env.returncode == 2 and "RLM_SANDBOX_TEMPERATURE=[secret OPENAI_API_KEY]" in from_env.stderr
    assert "Settings" not in typed.stderr + from_env.stderr and "pydantic" not in typed.stderr + from_env.stderr
    api = workdir.python(f"import rlm_sandbox\nrlm_sandbox.run('q', 'c', max_cost_usd={key!r})")
    assert api.returncode == 1 and "SettingsError: max_cost_usd" in api.stderr  # an uncaught error's traceback
    assert "input_value" not in api.stderr
    workdir.assert_nothing_leaked()


def test_doctor_and_settings_name_keys_but_never_show_them(workdir, sandbox_image):
    doctor = workdir.cli("doctor")
    assert "OPENAI_API_KEY (environment)" in doctor.stdout and "ANTHROPIC_API_KEY (.env)" in doctor.stdout
    listed = workdir.cli("settings")
    assert listed.returncode == 0 and "api_key" in listed.stdout and ".env (RLM_SANDBOX_API_KEY)" in listed.stdout
    as_json = {row["name"]: row for row in json.loads(workdir.cli("settings", "--json").stdout)}
    assert as_json["api_key"]["value"] == "********"
    workdir.assert_nothing_leaked()


def test_a_provider_key_in_dotenv_works_as_if_exported_and_an_exported_one_wins(tmp_path, sandbox_image):
    dotenv_key, exported_key = _fake("onlyindotenv"), _fake("exportedwins")
    workdir = Workdir(tmp_path, {"OPENAI_API_KEY": dotenv_key})
    used = []
    with OpenAICompatibleServer(lambda messages: "FINAL(ok)") as server:
        for exported in ({}, {"OPENAI_API_KEY": exported_key}):
            done = workdir.cli("run", "-q", "x", "-f", "context.txt", "-m", "openai/x", exported=exported,
                               env={"RLM_SANDBOX_API_BASE": server.url})
            assert done.returncode == 0, done.stderr
            used.append(_authorization(server))
    assert used == [f"Bearer {dotenv_key}", f"Bearer {exported_key}"]
    workdir.assert_nothing_leaked({"dotenv": dotenv_key, "exported": exported_key})


def test_an_unexpected_crash_prints_its_traceback_with_the_key_masked(workdir):
    """A bug (injected here: the context loader raises with a key in its message) still
    shows a traceback, for the bug report, but never the key."""
    script = ("import os, sys\nimport rlm_sandbox.cli\nrun = sys.modules['rlm_sandbox.cli.run']\n"
              "def broken(*args):\n    raise RuntimeError('boom ' + os.environ['OPENAI_API_KEY'])\n"
              "run.load_context = broken\n"
              "rlm_sandbox.cli.app(['run', '-q', 'x', '-f', 'context.txt'], prog_name='rlm-sandbox')\n")
    done = workdir.python(script)
    assert done.returncode == 1
    assert "Traceback" in done.stderr and "RuntimeError: boom [secret OPENAI_API_KEY]" in done.stderr
    workdir.assert_nothing_leaked()


def test_the_redactor_masks_whole_values_and_their_json_form_but_not_short_ones():
    from rlm_sandbox.redaction import Redactor

    redact = Redactor({"abcdefgh12": "A", "abcdefgh1234": "B", "short": "C", 'quo"te-secret': "D"})
    assert redact("x abcdefgh1234 y abcdefgh12 short") == "x [secret B] y [secret A] short"
    assert redact(json.dumps({"k": 'quo"te-secret'})) == '{"k": "[secret D]"}'
    assert not Redactor({}) and Redactor({})("abcdefgh1234") == "abcdefgh1234"
