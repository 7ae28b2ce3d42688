"""The command line's first contact: bad input gets one line naming the option, the bad value
and what is accepted (exit 2), before any container starts or any model is called; help,
--version, `settings`, --query-file; hints that point the right way.

Each runs ``python -m rlm_sandbox`` as a real subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlm_sandbox.testing import OpenAICompatibleServer

REPO = Path(__file__).resolve().parent.parent


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("RLM_SANDBOX_")}
    full_env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(REPO), **(env or {})})
    return subprocess.run([sys.executable, "-m", "rlm_sandbox", *args], capture_output=True, text=True,
                          env=full_env, timeout=300, cwd=cwd)


@pytest.fixture
def context_file(tmp_path: Path) -> Path:
    file = tmp_path / "c.txt"
    file.write_text("some context")
    return file


@pytest.mark.parametrize("args, env, expected", [
    (["-q", ""], {}, "--query: the question is empty"),
    (["--set", "memory=lots"], {}, "--set memory=lots: 'lots' is not a size; write it like 512m or 2g"),
    (["--set", "max_cost_usd=abc"], {}, "--set max_cost_usd=abc: input should be a valid number"),
    (["--set", "max_iterations=zero"], {}, "--set max_iterations=zero: input should be a valid integer"),
    (["--set", "sandbox=podman"], {},
     "--set sandbox=podman: no sandbox provider named 'podman'; use one of docker, local"),
    (["--sandbox", "podman"], {}, "--sandbox podman: no sandbox provider named 'podman'; use one of docker, local"),
    (["--max-iterations", "0"], {}, "--max-iterations 0: input should be greater than or equal to 1"),
    (["--max-iterations", "abc"], {}, "--max-iterations abc: input should be a valid integer"),
    (["--set", "max_iteratons=3"], {}, "--set max_iteratons=3: unknown option 'max_iteratons' (did you mean "
                                      "max_iterations?)"),
    (["--set", "noequals"], {}, "--set takes NAME=VALUE"),
    (["--context-format", "xml"], {}, "--context-format xml: not a format; use one of auto, text, json"),
    ([], {"RLM_SANDBOX_CPUS": "lots"}, "RLM_SANDBOX_CPUS=lots (from the environment): input should be a valid number"),
    (["--trace", "/nonexistent/dir/run.jsonl"], {}, "--trace /nonexistent/dir/run.jsonl: the directory "
                                                    "'/nonexistent/dir' does not exist"),
    (["--trace", "{tmp}"], {}, "--trace {tmp}: is a directory"),
    (["--query-file", "{tmp}/nope.txt"], {}, "--query-file {tmp}/nope.txt: does not exist"),
])
def test_bad_input_gets_one_line_and_exit_2_before_anything_starts(tmp_path, context_file, args, env, expected):
    args = [arg.replace("{tmp}", str(tmp_path)) for arg in args]
    expected = expected.replace("{tmp}", str(tmp_path))
    query = [] if "-q" in args or "--query-file" in args else ["-q", "a question"]
    with OpenAICompatibleServer(lambda messages: "FINAL(never)") as server:
        done = cli("run", *query, "-f", str(context_file), "-m", "openai/x", *args,
                   env={"RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test", **env})
    assert done.returncode == 2, done.stderr
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"rlm-sandbox: {expected}"), done.stderr
    assert not server.requests  # no model was called
    for noise in ("Traceback", "Settings", "pydantic", "https://"):
        assert noise not in done.stderr


def test_a_directory_as_context_file_is_called_a_directory(tmp_path):
    done = cli("run", "-q", "x", "-f", str(tmp_path))
    assert done.returncode == 2 and "is a directory" in done.stderr and "does not exist" not in done.stderr


def test_unknown_rlm_sandbox_variables_are_named_once_without_their_value(tmp_path):
    (tmp_path / ".env").write_text("RLM_SANDBOX_MODLE=value-of-the-typo\nOPENAI_API_KEY=sk-not-a-setting-0000\n")
    done = cli("settings", cwd=tmp_path, env={"RLM_SANDBOX_MAX_ITERATONS": "3"})
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert [line for line in lines if "RLM_SANDBOX_MODLE" in line] == [
        "rlm-sandbox: warning: ignoring RLM_SANDBOX_MODLE (in the .env file): it is not a setting "
        "(did you mean RLM_SANDBOX_MODEL?); `rlm-sandbox settings` lists them"]
    assert any("RLM_SANDBOX_MAX_ITERATONS (in the environment)" in line for line in lines)
    assert "value-of-the-typo" not in done.stderr and "OPENAI_API_KEY" not in done.stderr


def test_help_lists_exit_codes_and_shows_flags_without_a_value_type():
    top, run_help = cli("--help"), cli("run", "--help")
    assert top.returncode == 0 and run_help.returncode == 0
    for text in (top.stdout, run_help.stdout):
        assert "<bool>" not in text
        for code in ("0 ", "2 ", "3 ", "4 ", "5 ", "130"):
            assert f"\n    {code}" in text
    assert "Answer QUERY" not in run_help.stdout and "--query-file PATH" in run_help.stdout
    assert "settings" in top.stdout


def test_version():
    from rlm_sandbox import __version__

    done = cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"rlm-sandbox {__version__}"


def test_settings_lists_every_setting_with_its_source_and_masks_secrets(tmp_path):
    from rlm_sandbox.config import Settings

    (tmp_path / ".env").write_text("RLM_SANDBOX_MEMORY=2g\nRLM_SANDBOX_API_KEY=sk-from-dotenv-123456\n")
    env = {"RLM_SANDBOX_MAX_ITERATIONS": "7"}
    text = cli("settings", "--set", "cpus=2", cwd=tmp_path, env=env)
    rows = {row["name"]: row for row in json.loads(cli("settings", "--json", "--set", "cpus=2", cwd=tmp_path,
                                                       env=env).stdout)}
    assert text.returncode == 0 and set(rows) == set(Settings.model_fields)
    assert rows["memory"] == {**rows["memory"], "value": "2g", "source": ".env (RLM_SANDBOX_MEMORY)"}
    assert rows["max_iterations"]["value"] == 7
    assert rows["max_iterations"]["source"] == "environment (RLM_SANDBOX_MAX_ITERATIONS)"
    assert (rows["cpus"]["value"], rows["cpus"]["source"]) == (2.0, "--set")
    assert (rows["model"]["value"], rows["model"]["source"]) == ("gpt-4o-mini", "default")
    assert rows["api_key"]["value"] == "********"
    assert "sk-from-dotenv" not in text.stdout + text.stderr
    assert all(name in text.stdout for name in Settings.model_fields)
    bad = cli("settings", "--set", "cpus=many", cwd=tmp_path)
    assert bad.returncode == 2 and "cpus=many" in bad.stderr


@pytest.mark.docker
def test_query_file_carries_a_query_too_long_for_the_command_line(tmp_path, context_file, sandbox_image):
    query = "Count the words. " + "word " * 400_000  # 2 MB: over the kernel's limit for one argument
    (tmp_path / "query.txt").write_text(query)
    with OpenAICompatibleServer(lambda messages: "FINAL(ok)") as server:
        done = cli("run", "--query-file", str(tmp_path / "query.txt"), "-f", str(context_file), "-m", "openai/x",
                   env={"RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test"})
        sent = server.requests[0].messages[-1]["content"]
    assert done.returncode == 0, done.stderr
    assert query.strip() in sent
    both = cli("run", "-q", "x", "--query-file", str(tmp_path / "query.txt"), "-f", str(context_file))
    assert both.returncode == 2 and "one of them" in both.stderr


@pytest.mark.docker
def test_local_sandbox_warns_once_that_it_is_not_a_security_boundary(context_file, sandbox_image):
    with OpenAICompatibleServer(lambda messages: "FINAL(ok)") as server:
        env = {"RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test"}
        local = cli("run", "-q", "x", "-f", str(context_file), "-m", "openai/x", "--sandbox", "local", env=env)
        by_setting = cli("run", "-q", "x", "-f", str(context_file), "-m", "openai/x", "--set", "sandbox=local",
                         env=env)
        docker = cli("run", "-q", "x", "-f", str(context_file), "-m", "openai/x", env=env)
    assert local.returncode == 0 and by_setting.returncode == 0 and docker.returncode == 0
    for done in (local, by_setting):
        assert done.stderr.count("NOT a security boundary") == 1
        assert "--sandbox local is NOT a security boundary" in done.stderr
    assert "security boundary" not in docker.stderr


def test_docker_down_says_what_to_do_including_sandbox_local(context_file):
    with OpenAICompatibleServer(lambda messages: "```repl\nprint(1)\n```") as server:
        done = cli("run", "-q", "x", "-f", str(context_file), "-m", "openai/x",
                   env={"RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test",
                        "DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    assert done.returncode == 5, done.stderr
    assert "--sandbox local" in done.stderr and "NOT a security boundary" in done.stderr
    assert "Traceback" not in done.stderr
