"""Contexts from the command line (a real subprocess, real Docker): repeated ``-f`` (a list,
or a dict with ``--context-as dict``), ``--context-dir`` with ``--glob``, ``-f -`` and piped
stdin; bad combinations exit 2 before anything starts. And ``--json``: the documented
schema, every field of it in the README."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from rlm_sandbox.testing import OpenAICompatibleServer, Reply

REPO = Path(__file__).resolve().parent.parent
#: The model answers with the context it was given, as JSON (str, list or dict).
SHOW_CONTEXT = "```repl\nimport json\nFINAL(json.dumps(context, sort_keys=True))\n```"


@pytest.fixture(scope="module")
def server() -> Iterator[OpenAICompatibleServer]:
    with OpenAICompatibleServer(lambda messages: Reply(SHOW_CONTEXT, input_tokens=100, output_tokens=20)) as server:
        yield server


def cli(*args: str, server: OpenAICompatibleServer | None = None, stdin: str | None = None,
        cwd: Path = REPO) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY") and not k.startswith("RLM_SANDBOX_")}
    env.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(REPO)})
    if server is not None:
        env.update({"RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": "sk-test"})
    return subprocess.run([sys.executable, "-m", "rlm_sandbox", "run", "-q", "What is it?", "-m", "openai/x",
                           *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=300,
                          input=stdin, stdin=None if stdin is not None else subprocess.DEVNULL)


def context_of(done: subprocess.CompletedProcess) -> object:
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "a.txt").write_text("alpha text")
    (tmp_path / "b.json").write_text('{"k": 1}')
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "one.md").write_text("# one")
    (docs / "two.md").write_text("# two")
    (docs / "notes.txt").write_text("not markdown")
    (docs / "sub" / "deep.md").write_text("# deep")
    return tmp_path


@pytest.mark.docker
def test_repeated_files_become_a_list_or_a_dict(files, server, sandbox_image):
    assert context_of(cli("-f", files / "a.txt", "-f", files / "b.json", server=server)) == ["alpha text", {"k": 1}]
    assert context_of(cli("-f", files / "a.txt", "-f", files / "b.json", "--context-as", "dict", server=server)) == \
        {"a.txt": "alpha text", "b.json": {"k": 1}}


@pytest.mark.docker
def test_a_directory_with_a_glob_is_a_list_in_name_order_or_a_dict_by_path(files, server, sandbox_image):
    assert context_of(cli("--context-dir", files / "docs", "--glob", "*.md", server=server)) == ["# one", "# two"]
    assert context_of(cli("--context-dir", files / "docs", "--glob", "**/*.md", "--context-as", "dict",
                          server=server)) == {"one.md": "# one", "sub/deep.md": "# deep", "two.md": "# two"}


@pytest.mark.docker
def test_stdin_piped_or_named_with_dash(files, server, sandbox_image):
    assert context_of(cli(server=server, stdin="from a pipe")) == "from a pipe"
    assert context_of(cli("-f", "-", "-f", files / "a.txt", server=server, stdin="piped")) == ["piped", "alpha text"]


@pytest.mark.parametrize("args, expected", [
    (["--context-dir", "{tmp}/nowhere"], "--context-dir {tmp}/nowhere: does not exist"),
    (["--context-dir", "{tmp}/docs", "--glob", "*.pdf"], "no file matches"),
    (["-f", "{tmp}/a.txt", "--context-as", "tuple"], "--context-as tuple: not a shape"),
    (["-f", "-", "-f", "-"], "-f - is given twice"),
    (["-f", "{tmp}/a.txt", "-f", "{tmp}/a.txt", "--context-as", "dict"], "the same file is given twice"),
])
def test_bad_context_options_exit_2_before_anything_starts(files, args, expected):
    with OpenAICompatibleServer(lambda messages: "FINAL(never)") as server:
        done = cli(*[a.format(tmp=files) for a in args], server=server, stdin="")
        assert not server.requests
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and expected.format(tmp=files) in done.stderr, done.stderr


@pytest.mark.docker
def test_json_output_follows_its_schema(files, server, sandbox_image):
    done = cli("-f", files / "a.txt", "--json", "--set", "max_sub_calls=7", "--set", "max_total_tokens=5000",
               server=server)
    assert done.returncode == 0, done.stderr
    from rlm_sandbox.cli.result_json import ResultJSON

    report = ResultJSON.model_validate_json(done.stdout)  # every field there, and of its type
    assert set(json.loads(done.stdout)) == set(ResultJSON.model_fields)
    assert report.answer == '"alpha text"' and report.answer_from == "final" and report.is_final
    assert report.status == "completed" and report.cost_usd is None and report.cost == "unknown"
    assert [(u.model, u.role, u.calls, u.input_tokens, u.output_tokens) for u in report.usage] == \
        [("openai/x", "root", 1, 100, 20)]
    assert report.budget["sub_calls"].limit == 7 and report.budget["sub_calls"].used == 0
    assert report.budget["total_tokens"].limit == 5000 and report.budget["total_tokens"].used == 120
    assert report.budget["cost_usd"].used is None and report.budget["cost_usd"].limit is None
    assert report.budget["iterations"].used == 1 and report.budget["iterations"].limit == 20


def test_the_readme_documents_every_json_field():
    from rlm_sandbox.cli.result_json import BudgetUse, ModelUse, ResultJSON

    readme = (REPO / "README.md").read_text()
    section = re.search(r"### `--json`\n(.*?)\n##", readme, re.S)
    assert section, "README has no ### `--json` section"
    for model in (ResultJSON, ModelUse, BudgetUse):
        for name in model.model_fields:
            assert f"`{name}`" in section.group(1), f"README's --json section does not document {name}"
    for name in ("iterations", "sub_calls", "total_tokens", "cost_usd", "wall_time_s"):
        assert f"`{name}`" in section.group(1)
