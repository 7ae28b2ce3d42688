"""``rlm-sandbox eval list|generate`` and ``rlm-sandbox run --record/--replay``, run as a user
would: a subprocess; the recorded model is a real HTTP server on 127.0.0.1, gone at replay."""

from __future__ import annotations

import json

import pytest

from rlm_sandbox.eval.generators import GENERATORS
from rlm_sandbox.eval.scorers import SCORERS
from rlm_sandbox.eval.tasks import load_tasks
from rlm_sandbox.testing import OpenAICompatibleServer
from tests.test_cli import cli

KEY = "sk-test-abcdef0123456789"


def test_eval_list_names_every_generator_its_parameters_and_every_scorer():
    done = cli("eval", "list")
    assert done.returncode == 0, done.stderr
    for name, generator in GENERATORS.items():
        assert f"{name}: " in done.stdout and all(f"-p {param}=" in done.stdout for param in generator.params)
    assert all(name in done.stdout for name in SCORERS) and "module:function" in done.stdout


def test_eval_generate_writes_the_same_small_task_file_for_the_same_seed(tmp_path):
    paths = [tmp_path / name for name in ("a.jsonl", "b.jsonl", "c.jsonl")]
    for path, seed in zip(paths, ("5", "5", "6"), strict=True):
        done = cli("eval", "generate", "sniah", "--n", "3", "--seed", seed, "-p", "tokens=1000000", "-o", str(path))
        assert done.returncode == 0 and "wrote 3 sniah task(s)" in done.stderr, done.stderr
    assert paths[0].read_bytes() == paths[1].read_bytes() != paths[2].read_bytes()
    assert paths[0].stat().st_size < 3000  # three 1M-token tasks: the contexts are not in the file
    tasks = load_tasks(paths[0])
    assert [task.generator.seed for task in tasks] == [task.generator.seed for task in load_tasks(paths[1])]
    assert len(tasks[0].load_context()) > 3_000_000
    bad = cli("eval", "generate", "sniah", "-p", "records=3", "-o", str(tmp_path / "x.jsonl"))
    assert bad.returncode == 2 and "records" in bad.stderr and "tokens" in bad.stderr
    unknown = cli("eval", "generate", "sniah-x", "-o", str(tmp_path / "y.jsonl"))
    assert unknown.returncode == 2 and "salary" in unknown.stderr  # names the generators there are


@pytest.mark.docker
def test_run_records_then_replays_with_the_server_gone(tmp_path, sandbox_image):
    context = tmp_path / "notes.txt"
    context.write_text("alpha beta gamma beta")
    code = "```repl\nn = llm_query('How many words? ' + context)\nFINAL(n)\n```"
    with OpenAICompatibleServer(
            lambda m: code if m[0]["role"] == "system" else str(len(m[-1]["content"].split()) - 3)) as server:
        args = ["run", "-q", "How many words?", "-f", str(context), "-m", "openai/tape-model", "--json"]
        env = {"RLM_SANDBOX_API_BASE": server.url, "RLM_SANDBOX_API_KEY": KEY, "RLM_SANDBOX_MAX_RETRIES": "0"}
        recorded = cli(*args, "--record", str(tmp_path / "tape"), env=env)
        calls = len(server.requests)
    assert recorded.returncode == 0, recorded.stderr
    assert json.loads(recorded.stdout)["answer"] == "4" and calls == 2
    cassette = (tmp_path / "tape" / "cassette.jsonl").read_text()
    assert KEY not in cassette and len(cassette.splitlines()) == 3  # header, root call, sub-call
    replayed = cli(*args, "--replay", str(tmp_path / "tape"), env=env)  # the server is closed
    assert replayed.returncode == 0, replayed.stderr
    before, after = json.loads(recorded.stdout), json.loads(replayed.stdout)
    assert {k: before[k] for k in ("answer", "status", "total_input_tokens", "sub_calls")} == \
        {k: after[k] for k in ("answer", "status", "total_input_tokens", "sub_calls")}
    context.write_text("alpha beta gamma beta delta")  # another context: a request never recorded
    missed = cli(*args, "--replay", str(tmp_path / "tape"), env=env)
    assert missed.returncode != 0 and "not in the cassette" in missed.stderr + missed.stdout
    both = cli(*args, "--record", "a", "--replay", "b", env=env)
    assert both.returncode == 2 and "not both" in both.stderr
